"""Text conditionings that behave like their (B, L, D) hidden-states tensor where the rollout and the update
index, move or measure it, while carrying the extra inputs a family's denoiser takes (SDXL's pooled embedding
and time ids, FLUX's pooled embedding and text ids)."""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar

__all__ = ["BatchedText"]


class BatchedText:
    """Mixin for a dataclass whose first field is ``hidden`` (B, L, D). Fields named in ``shared`` are the
    same for every sample: indexing keeps them whole; moving moves them too."""

    shared: ClassVar[tuple[str, ...]] = ()

    @property
    def dtype(self):
        return self.hidden.dtype

    @property
    def shape(self):
        return self.hidden.shape

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def __getitem__(self, idx):
        return type(self)(**{f.name: getattr(self, f.name) if f.name in self.shared else getattr(self, f.name)[idx]
                             for f in fields(self)})

    def to(self, *args, **kwargs):
        return type(self)(**{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})
