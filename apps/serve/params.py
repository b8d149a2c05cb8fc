"""A request's generation values: defaults from the model's family, checks before the queue, OpenAI's ``size``.

A bad value is refused here, in the request handler, so it costs no model time. The step count is checked
against the model's scheduler once per count (building a scheduler is a few ms of Python holding the GIL the
running job needs; accepted counts are remembered, refused ones checked every time).
"""

from __future__ import annotations

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import at_least, check_seed, finite

from .forms import ApiError, Form
from .uploads import sdk_error

__all__ = ["MAX_N", "Params", "parse_size"]

MAX_N = 10
"""Most candidates per request (OpenAI's limit for ``n``)."""


class Params:
    """The values checks and defaults of one served ``inpainter``.

    Args:
        inpainter: the served :class:`prefpaint_sdk.Inpainter` (its ``check_steps``, ``check_knobs`` and
            family ``defaults``).
        default_steps: the server's ``--steps``, already checked (``None``: the family's).
    """

    def __init__(self, inpainter, default_steps: int | None):
        self.inpainter = inpainter
        self.default_steps = default_steps
        # The family's own defaults (engine traits, as Inpainter.defaults reports them) for requests that don't say.
        self.family_defaults = dict(inpainter.defaults)
        self._good_steps: dict[int, int] = {}

    def defaults(self) -> dict:
        """What a request that does not say gets: steps (the server's ``--steps`` or the family's), guidance, eta."""
        d = dict(self.family_defaults)
        if self.default_steps is not None:
            d["steps"] = self.default_steps
        return d

    def check_steps(self, steps) -> int:
        ok = self._good_steps.get(steps) if type(steps) is int else None
        if ok is None:
            ok = self.inpainter.check_steps(steps)
            if type(steps) is int:
                self._good_steps[steps] = ok
        return ok

    def check(self, n, seed, steps, guidance, negative_prompt: str = "", eta: float | None = None) -> int:
        """Check a request's values (400 naming the first bad one); returns the step count to run."""
        try:
            at_least("n", n, 1, MAX_N)
            check_seed(seed, count=n)
            finite("guidance", guidance, 0.0)
            # A knob the family lacks (FLUX Fill: negative_prompt, eta) is refused here, before the queue.
            self.inpainter.check_knobs(negative_prompt=negative_prompt, eta=eta)
            if eta is not None:
                finite("eta", eta, 0.0, 1.0)
            return self.check_steps(steps)
        except InvalidInputError as exc:
            raise sdk_error(exc) from None

    def steps_of(self, form: Form) -> int:
        steps = form.integer("steps")
        if steps is None:
            steps = self.default_steps
        return self.family_defaults["steps"] if steps is None else steps

    def steps_for_quality(self, quality: str) -> int:
        """OpenAI's ``quality`` as a step count: ``low`` a quarter of the default steps, ``medium`` half,
        ``high`` and ``auto`` all of them (the default: the server's ``--steps``, else the family's)."""
        d = self.defaults()["steps"]
        return {"low": max(1, round(d / 4)), "medium": max(1, round(d / 2))}.get(quality, d)

    def guidance_of(self, form: Form) -> float:
        return form.number("guidance", float(self.family_defaults["guidance_scale"]))


def parse_size(size: str, max_pixels: int) -> tuple[int, int] | None:
    """OpenAI's ``size``: "auto" (the input's size) or "WIDTHxHEIGHT"."""
    if size == "auto":
        return None
    parts = size.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ApiError(422, f"'size' must be 'auto' or WIDTHxHEIGHT such as 512x512, got {size[:40]!r}",
                       param="size") from None
    if w < 8 or h < 8 or w > 8192 or h > 8192:
        raise ApiError(400, f"size {w}x{h} is out of range: each side must lie in 8..8192", param="size")
    if w * h > max_pixels:
        raise ApiError(400, f"size {w}x{h} has {w * h:,} pixels, over this server's limit of {max_pixels:,}",
                       param="size")
    return w, h
