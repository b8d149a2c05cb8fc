"""Who evaluates which case: the protocol :func:`~prefpaint_sdk.evaluation.evaluate` needs from its processes.

The processes themselves (rank, stable share by a hash of the case name, barriers, gathering) are
:class:`prefpaint_sdk.jobs.JobContext`, which satisfies :class:`ProcessGroup`; evaluation sits below jobs in
the layering, so it names the protocol here and never imports jobs. :data:`SOLO` is one process doing every
case.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Protocol

__all__ = ["ProcessGroup", "SOLO"]


class ProcessGroup(Protocol):
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool: ...

    def owns(self, item_id: str) -> bool: ...

    def wait(self, poll: Callable[[], None] | None = None) -> None: ...

    def gather_json(self, obj: Any) -> list[Any]: ...

    def device_for(self, device: str) -> str: ...

    def prefetch(self, offline: bool | None, models=(), reward_model=None) -> None: ...

    def disk_progress(self, folder, pending: list[str], done_before: int, total: int, progress) -> Callable: ...


class _Solo:
    """One process: owns every case, never waits."""

    rank, world_size, is_main = 0, 1, True

    def owns(self, item_id: str) -> bool:
        return True

    def wait(self, poll=None) -> None:
        return None

    def gather_json(self, obj: Any) -> list[Any]:
        return [obj]

    def device_for(self, device: str) -> str:
        return device

    def prefetch(self, offline, models=(), reward_model=None) -> None:
        return None

    def main_process_first(self):
        return nullcontext()


SOLO = _Solo()
