"""One evaluation case at a time: draw the missing samples, score them, and publish the case as one output set.

A case's new images and its ``cache/<name>.json`` appear together or not at all (the entry is the commit).
A cache entry is reused only when it is whole (:func:`record_problem` says why not); a case whose entry is
missing or corrupt is computed again from its seeds, after removing temporary files a killed process left in
the case's own folders (only the process that owns a case ever writes them).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import Arg, DataError
from ..files import image_writer, json_writer, write_set
from ..imaging import dilate_mask, fit_mask_to_image, load_image, load_mask
from ..reward.framing import mask_fill_of, reward_views
from .data import EvalCase
from .masksets import case_seed, mask_for
from .metrics import masked_psnr, masked_ssim

__all__ = ["CaseRunner", "mask_overlay", "record_problem"]

log = logging.getLogger(__name__)


def record_problem(rec, name: str, out: Path) -> str | None:
    """Why a cache entry cannot be reused (wrong type, inconsistent, missing or truncated image), or None."""
    if not isinstance(rec, dict):
        return f"it holds a JSON {type(rec).__name__}, not an object"
    m, b = rec.get("model"), rec.get("baseline")
    if rec.get("name") != name or not isinstance(m, dict) or not isinstance(b, dict):
        return "it is not a case record of this evaluation"
    keys = ("seeds", "scores", "bounds", "files", "psnr", "ssim")
    if not all(isinstance(m.get(k), list) for k in keys) or len({len(m[k]) for k in keys}) != 1 or not m["seeds"]:
        return "its model samples are incomplete"
    scores = m["scores"] + [b.get("score")]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in scores):
        return "it holds a score that is not a finite number"
    box = rec.get("box")
    if box is not None and not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
        return f"its box {box!r} is not four integers"
    files = rec.get("files")
    if not isinstance(files, dict):
        return "its input files are not recorded"
    for rel in [*files.values(), *m["files"], b.get("file")]:
        problem = _image_problem(out / rel) if isinstance(rel, str) else f"a file entry {rel!r} is not a path"
        if problem:
            return problem
    return None


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _image_problem(path: Path) -> str | None:
    """Why a cached image cannot be used (missing, empty, unreadable, truncated), or None; cheap for PNGs."""
    try:
        size = path.stat().st_size
        if size == 0:
            return f"image '{path}' is empty"
        with Image.open(path) as im:
            if im.format == "PNG":
                with open(path, "rb") as f:
                    f.seek(max(0, size - len(_PNG_END)))
                    if f.read() != _PNG_END:
                        return f"image '{path}' is truncated"
            else:
                im.verify()
    except FileNotFoundError:
        return f"image '{path}' is missing"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a damaged file
        return f"image '{path}' is unreadable ({type(exc).__name__}: {exc})"
    return None


class CaseRunner:
    """Runs (or resumes) one case at a time; counts the cases it had to compute."""

    def __init__(self, model, baseline, reward_model, out: Path, config: dict, mask_mode: str, smax: int, kwargs):
        self.model, self.baseline, self.rm = model, baseline, reward_model
        self.out, self.config, self.mask_mode, self.smax, self.kwargs = out, config, mask_mode, smax, kwargs
        self.computed = 0

    def cached(self, case: EvalCase, warn: bool = True) -> dict | None:
        """The case's finished record (every sample asked for) from the cache, or None."""
        rec = self._cached(self.out / "cache" / f"{case.name}.json", case.name, warn)
        return rec if rec is not None and len(rec["model"]["seeds"]) >= self.smax else None

    def finished(self, case: EvalCase) -> bool:
        return self.cached(case, warn=False) is not None

    def run(self, case: EvalCase) -> dict:
        cache = self.out / "cache" / f"{case.name}.json"
        rec = self._cached(cache, case.name)
        if rec is not None and len(rec["model"]["seeds"]) >= self.smax:
            return rec
        self._remove_stale_temps(case.name)
        t0 = time.perf_counter()
        rec, images = self._compute(case, rec)
        rec["seconds"] = rec.get("seconds", 0.0) + time.perf_counter() - t0
        # The case's new images and its cache entry appear together or not at all (the entry is the commit).
        writers = {path: image_writer(im, path) for path, im in images.items()}
        writers[cache] = json_writer(rec, cache)
        write_set(writers, overwrite=True)
        self.computed += 1
        return rec

    def _remove_stale_temps(self, name: str) -> None:
        """Temporary files a killed process left while publishing this case (``.<file>.XXXX.tmp<suffix>``)."""
        # mkstemp's names: ".<file>." + 8 characters of [a-z0-9_] + ".tmp<suffix>". Exact, so that case "a" never
        # removes a temporary file of case "a.json".
        own = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?")
        for folder, file in ((self.out / "images" / name, None), (self.out / "cache", f"{name}.json")):
            if folder.is_dir():
                for p in folder.iterdir():
                    m = own.fullmatch(p.name)
                    if m and (file is None or m.group(1) == file) and p.is_file():
                        p.unlink(missing_ok=True)

    def _cached(self, cache: Path, name: str, warn: bool = True) -> dict | None:
        """The case's cache entry, or ``None`` when there is none or it is corrupt (a warning names it)."""
        if not cache.exists():
            return None
        try:
            rec = json.loads(cache.read_text())
            problem = record_problem(rec, name, self.out)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return rec
        if warn:
            log.warning("cache entry '%s' is corrupt (%s); discarding it and computing case '%s' again", cache, problem,
                        name)
        return None

    def _inputs(self, case: EvalCase):
        image = load_image(case.image)
        kind = "given"
        if case.mask is not None and self.mask_mode in ("auto", "given"):
            hole = fit_mask_to_image(load_mask(case.mask), image.size)
        elif self.mask_mode == "given":
            raise DataError(f"case '{case.name}' has no mask but ", Arg("masks", "given"), f"; add masks/{case.name}.png or use ",
                            Arg("masks", "strokes"))
        else:
            hole, kind = mask_for("random" if self.mask_mode == "auto" else self.mask_mode, image.size, case.name,
                                  self.config["seed"], case.depth)
        if not hole.any():
            raise DataError(f"the mask of case '{case.name}' is empty (nothing to inpaint); fix or drop it")
        gt_mode = self.config["ground_truth"]
        target = None
        if gt_mode == "input" or (gt_mode == "auto" and case.target is None and kind != "given"):
            target = image
        elif gt_mode == "auto" and case.target is not None:
            target = load_image(case.target)
            if target.size != image.size:
                raise DataError(f"target of case '{case.name}' is {target.size[0]}x{target.size[1]} but its image is "
                                f"{image.size[0]}x{image.size[1]}; give ground truth at the input's size")
        return image, hole, kind, target

    def _compute(self, case: EvalCase, rec: dict | None) -> tuple[dict, dict[Path, Image.Image]]:
        """Draw the missing samples of a case and score them; returns the record and the images to write."""
        image, hole, kind, target = self._inputs(case)
        name = case.name
        folder = self.out / "images" / name
        rel = lambda p: p.relative_to(self.out).as_posix()  # noqa: E731
        s0 = case_seed(self.config["seed"], name)
        b_seed = s0 if self.config["common_seeds"] else case_seed(self.config["seed"], name, "baseline")
        images: dict[Path, Image.Image] = {}
        if rec is None:
            files = dict(input=folder / "input.png", mask=folder / "mask.png", overlay=folder / "overlay.png")
            images[files["input"]] = image
            images[files["mask"]] = Image.fromarray(hole.astype(np.uint8) * 255, "L")
            images[files["overlay"]] = mask_overlay(image, hole)
            if target is not None and target is not image:
                files["target"] = folder / "target.png"
                images[files["target"]] = target
            rec = dict(name=name, size=list(image.size), mask_kind=kind, coverage=float(hole.mean()), seed=s0,
                       files={k: rel(v) for k, v in files.items()}, has_ground_truth=target is not None,
                       box=None, model=dict(seeds=[], scores=[], bounds=[], files=[], psnr=[], ssim=[]), baseline=None)
        have = len(rec["model"]["seeds"])
        need = self.smax - have
        call = dict(prompt=self.config["prompt"], steps=self.config["steps"], **self.kwargs)
        result = self.model(image, hole, num_candidates=need, seed=s0 + have, **call)
        new = list(result.candidates)[:need]
        if len(new) != need:
            raise DataError(f"model returned {len(new)} candidates for case '{name}', {need} were asked for")
        if have == 0:
            box = getattr(result, "box", None)
            rec["box"] = [int(v) for v in box] if box is not None else None
        to_score = new
        if rec["baseline"] is None:
            to_score = new + [list(self.baseline(image, hole, num_candidates=1, seed=b_seed, **call).candidates)[0]]
        # One frame for the case (the model's context box), framed as best-of-N and the aligner frame it.
        reward_hole = dilate_mask(hole, int(self.kwargs.get("mask_dilate") or 0))
        per = None
        if is_stack(self.rm):
            scores, bounds, per = stack_scores(self.rm, to_score, image, reward_hole, rec["box"], self.config["prompt"])
        else:
            views, masked = reward_views(to_score, image, reward_hole, rec["box"], mask_fill_of(self.rm))
            out = self.rm.score(views, masked_images=[masked] * len(views))
            scores = [float(x) for x in np.asarray(out.scores, dtype=np.float64).ravel()]
            bounds = getattr(out, "bounds", None)
            bounds = [float(x) for x in np.asarray(bounds, dtype=np.float64).ravel()] if bounds is not None else None
        if len(scores) != len(to_score) or not np.all(np.isfinite(scores)):
            raise DataError(f"the reward model returned {scores} for the {len(to_score)} samples of case '{name}'; "
                            "a WinRate needs one finite score per sample")
        if bounds is not None and not np.all(np.isfinite(bounds)):
            bounds = [b if np.isfinite(b) else None for b in bounds]
        for k, im in enumerate(to_score):
            is_base = k >= len(new)
            seed_k = b_seed if is_base else s0 + have + k
            path = folder / (f"baseline_seed{seed_k}.png" if is_base else f"model_k{have + k}_seed{seed_k}.png")
            images[path] = im
            psnr = masked_psnr(im, target, hole) if target is not None else None
            ssim = masked_ssim(im, target, hole) if target is not None else None
            bound = bounds[k] if bounds is not None else None
            if is_base:
                rec["baseline"] = dict(seed=seed_k, score=scores[k], bound=bound, file=rel(path), psnr=psnr, ssim=ssim)
                if per is not None:
                    rec["baseline"]["rewards"] = {lab: v["scores"][k] for lab, v in per.items()}
            else:
                m = rec["model"]
                m["seeds"].append(seed_k)
                m["scores"].append(scores[k])
                m["bounds"].append(bound)
                m["files"].append(rel(path))
                m["psnr"].append(psnr)
                m["ssim"].append(ssim)
                if per is not None:
                    for lab, v in per.items():
                        m.setdefault("rewards", {}).setdefault(lab, []).append(v["scores"][k])
        return rec, images


def is_stack(reward) -> bool:
    """Whether the judge is a reward stack (:class:`~prefpaint_sdk.reward.stack.RewardStack`)."""
    return hasattr(reward, "labels") and hasattr(reward, "score_image")


def stack_scores(stack, samples, image, hole, box, prompt: str):
    """A stack's judgement of one case's samples: ``(scores, bounds, per_reward)``.

    The WinRate score of a sample is one reward's own score when the stack has one (with its bounds), else the
    weighted raw sum ``sum_r w_r s_r``: the number ``/v1/score`` answers for one image, fixed per sample, so a
    resumed evaluation that draws more samples never changes the scores it already has. NaN where a reward
    could not score the sample (the case is then refused).
    """
    from ..reward.choice import score_candidates

    per = score_candidates(stack, samples, image, hole, box, prompt)
    if len(per) == 1:
        only = next(iter(per.values()))
        scores = [np.nan if v is None else v for v in only["scores"]]
        return scores, only["bounds"], per
    rows = np.array([[np.nan if v is None else v for v in per[lab]["scores"]] for lab in stack.labels], dtype=np.float64)
    return [float(x) for x in np.asarray(stack.weights, dtype=np.float64) @ rows], None, per


def mask_overlay(image: Image.Image, hole: np.ndarray, color=(255, 0, 180), alpha: float = 0.55) -> Image.Image:
    """The input with the hole tinted, so a reader sees what was masked."""
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    a[hole] = a[hole] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
