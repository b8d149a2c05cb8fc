"""Metric logging of an :class:`~.trainer.Aligner`: accelerate's trackers, ``log.jsonl`` and the Python log."""

from __future__ import annotations

import json
import logging

from ..state import json_safe

__all__ = ["log_metrics"]

log = logging.getLogger(__name__)


def log_metrics(self, metrics: dict[str, float], eval_tag: str | None = None) -> None:  # noqa: ANN001 - self is the Aligner
    """Log ``metrics`` at the current iteration (trackers on every process; the file and log on the main one)."""
    acc = self.accelerator
    if self.config.log_with != "none" and acc.trackers:
        acc.log({k if "/" in k else f"train/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))},
                step=self.iteration)
    if acc.is_main_process:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        rec = {"iteration": self.iteration, **({"tag": eval_tag} if eval_tag else {}), **metrics}
        with open(self.output_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps(json_safe(rec), allow_nan=False) + "\n")  # strict JSON: a NaN metric is null
        log.info("iter %d: %s", self.iteration, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()
                                                           if isinstance(v, float)))
