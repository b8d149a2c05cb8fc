"""``prefpaint``: the PrefPaint reward model behind the reward protocol, with its trust bound."""

from __future__ import annotations

from .base import RewardScores, hole_of, to_1d, to_pil
from .framing import mask_fill_of, reward_view

__all__ = ["PrefPaintReward"]


class PrefPaintReward:
    """A :class:`~prefpaint_sdk.reward.RewardModel` (or any object with its ``.score``) as a protocol reward.

    The samples are framed by :func:`~prefpaint_sdk.reward.framing.reward_view` (the whole frame; the masked
    view is the original with the hole in the model's ``mask_fill``), the one framing every path shares.
    Scores come with the model's bounds and trust weights when it has a trust matrix.

    Args:
        model: the reward model.
        batch_size: images per backbone pass.
    """

    needs_original = False
    needs_prompts = False

    def __init__(self, model, batch_size: int = 16):
        self.model = model
        self.batch_size = batch_size

    def __call__(self, images, masks, masked_images, *, prompts=None) -> RewardScores:
        n = images.shape[0]
        fill = mask_fill_of(self.model)
        views = [reward_view(im, hole_of(m, images.shape[-2:]), None, fill, source=src)
                 for im, m, src in zip(to_pil(images), masks, to_pil(masked_images))]
        out = self.model.score([v for v, _ in views], masked_images=[mv for _, mv in views], batch_size=self.batch_size)
        bounds, trust = getattr(out, "bounds", None), getattr(out, "trust", None)
        return RewardScores(to_1d(out.scores, n, "scores"), None if bounds is None else to_1d(bounds, n, "bounds"),
                            None if trust is None else to_1d(trust, n, "trust weights"))
