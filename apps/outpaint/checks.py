"""The extension's front door, before any model loads: :func:`validate` (the user's values alone) and
:func:`prepare_extension` (the image, the model's working size from its config files, the plan).

``prefpaint extend`` calls both, in that order, and :func:`~.run.extend` calls :func:`validate` first.
"""

from __future__ import annotations

from typing import Any

from prefpaint_sdk import DEFAULT_MODEL, InvalidInputError, PrefPaintError, load_image, model_info
from prefpaint_sdk.utils import Arg, check_image_file, check_image_suffix, check_outputs, check_seed, sidecar_path

from .plan import DEFAULT_MAX_SIZE, ExtendPlan, plan_extension
from .run import check_run_options

__all__ = ["prepare_extension", "validate"]


def validate(*, output=None, overwrite: bool = False, save: bool = False, dry_run: bool = False, seed: int | None = None,
             window: int | None = None, feather: int | None = None, prefill: str = "replicate", seam_pass: bool = False,
             seam_strength: float | None = None, strength: float = 1.0, num_candidates: int = 1,
             steps: int | None = None) -> None:
    """Every check of an extension that needs no model and no image: the seed; unless ``dry_run`` (a plan
    only), the output set (the image and its sidecar; ``save``: one is needed) and the run options of
    :func:`~.run.check_run_options`.

    Raises:
        InvalidInputError: naming the parameter and the value. OutputExistsError: an output exists and not
            ``overwrite``.
    """
    if dry_run:
        check_seed(seed)
        return
    if output is None and save:
        raise InvalidInputError("no output file; pass ", Arg("output", "OUT.png"), " (or ", Arg("dry_run", True),
                                " to only print the plan)")
    if output is not None:
        check_image_suffix(output)
        check_outputs([output, sidecar_path(output)], overwrite)
    check_run_options(window=window, feather=feather, prefill=prefill, seam_pass=seam_pass, seam_strength=seam_strength,
                      strength=strength, num_candidates=num_candidates, steps=steps, seed=seed)
    check_seed(seed)  # and its upper bound


def prepare_extension(image, *, model=None, offline: bool | None = None, device: str = "auto", dry_run: bool = False,
                      window: int | None = None, size: dict[str, Any] | None = None,
                      stepping: dict[str, Any] | None = None, **options: Any) -> tuple[Any, ExtendPlan, int | None]:
    """The image (its header first: a bomb is refused before it is decoded) and the plan, before the model
    loads. The window a loaded model would use is read from the model's config files (``model_info``), so a
    dry run shows the real plan; a model that cannot be found is reported after the user's other values.

    Args:
        size / stepping: :func:`~.plan.plan_extension`'s size arguments (``max_size`` included) and
            ``step_frac`` / ``overlap``.
        options: the run options of :func:`validate` (checked against the model's window unless ``dry_run``).

    Returns:
        (the image, the plan, the window).
    """
    check_image_file(image)
    img = load_image(image)
    model_error = None
    if window is None:
        try:
            window = model_info(model or DEFAULT_MODEL, offline=offline).resolution
        except PrefPaintError as exc:  # reported after the checks of the user's other values
            model_error = exc
    size = dict(size or {})
    plan = plan_extension(img.size, window=window or size.get("max_size", DEFAULT_MAX_SIZE), **size, **(stepping or {}))
    if not dry_run:
        check_run_options(window=window, **options)
    if model_error is not None:
        if not dry_run:  # from_pretrained's order: the device (and the rest) before the model's own error
            from prefpaint_sdk import Inpainter

            Inpainter.check_files(model or DEFAULT_MODEL, offline=offline, device=device, steps=options.get("steps"))
        raise model_error
    return img, plan, window
