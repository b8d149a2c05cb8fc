"""Reward datasets: the official PrefPaint layout and generic manifests, validated and split by prompt.

Layouts :func:`read_reward_data` accepts:

* **Official release** (a folder): one JSON file ``{"<imgid>_<k>": [score, rank], ...}`` at the top,
  ``inpaint/<imgid>_<k>.png`` (the inpaintings), ``masks_color/<imgid>_mask_color.png`` (the masked prompt
  image) and ``masks/<imgid>_mask.png``. The prompt image ``<imgid>`` is the group.
* **Generic manifest** (``manifest.jsonl`` / ``manifest.csv`` in a folder, or the file itself); paths are
  relative to the manifest. Either scored rows::

      {"image": "a.png", "mask": "m.png", "score": 5.2, "group": "p1"}

  (``masked_image`` may replace or accompany ``mask``; ``group`` defaults to the masked image or mask path;
  optional ``split`` = train/val/test and ``mask_type``), or preference pairs::

      {"better": "a.png", "worse": "b.png", "mask": "m.png"}

  Every path must stay inside the manifest's folder (no ``../``, no absolute path): a :class:`DataError`.

Both trainers read through here: ``train reward`` (scores, :meth:`RewardData.group_pairs`) and Diffusion-DPO
(:func:`read_preference_pairs`: ranked pairs within a prompt, or the explicit pairs).

Every referenced file is decoded once, whole (a truncated file passes a header check), before any model
loads. A missing, corrupt or oversized file (past the pixel limit, decompression bombs included), or a
mask whose aspect ratio differs from its image's, skips its sample with a warning naming it; more than
``max_bad_fraction`` (1%) bad samples raises :class:`DataError`. A NaN or infinite score is a
:class:`DataError` naming the file and the row.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import IMAGE_SUFFIXES, find_image, manifest_path, read_rows
from ..errors import Arg, DataError, ImageTooLargeError, InvalidInputError
from ..imaging import check_image_file, get_max_pixels

__all__ = ["OFFICIAL_DIRS", "PAIR_MODES", "RewardData", "RewardSample", "read_preference_pairs", "read_reward_data",
           "split_by_group"]

log = logging.getLogger(__name__)

OFFICIAL_DIRS = ("inpaint", "masks_color", "masks")
MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
_MAX_NAMED = 20  # bad files named one by one in the log; the rest are counted
PAIR_MODES = ("all", "best-worst")


@dataclass(frozen=True)
class RewardSample:
    """One rated inpainting: the image, its masked prompt image (or mask), the score, the prompt group."""

    image: Path
    group: str
    score: float | None = None
    masked: Path | None = None
    mask: Path | None = None
    mask_type: str = ""
    split: str | None = None
    rank: float | None = None  # the place within its prompt, 1 = best (official labels' second value)


@dataclass
class RewardData:
    """Validated samples, explicit preference pairs (indices into ``samples``) and what was skipped."""

    samples: list[RewardSample]
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (better, worse)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    source: str = ""

    @property
    def has_scores(self) -> bool:
        return bool(self.samples) and all(s.score is not None for s in self.samples)

    @property
    def groups(self) -> list[str]:
        return sorted({s.group for s in self.samples})

    def group_pairs(self) -> list[tuple[int, int]]:
        """Preference pairs: the explicit ones, else every within-group pair with different scores."""
        if self.pairs or not self.has_scores:
            return list(self.pairs)
        return self.preference_pairs(by="score")

    def preference_pairs(self, mode: str = "all", min_margin: float = 0.0, by: str = "rank") -> list[tuple[int, int]]:
        """(better, worse) index pairs: the explicit ones, else pairs within each prompt group.

        Args:
            mode: "all": every two inpaintings of a prompt whose order differs; "best-worst": one pair per
                prompt, its best against its worst (the first of each in file order when several tie).
            min_margin: keep only pairs whose scores differ by at least this much (needs scores).
            by: "rank" orders a group by its ranks (1 = best) when all of them have one, else by score;
                "score" always by score.

        Raises:
            DataError: an unknown mode, a negative or non-finite margin, or a margin without scores.
        """
        if mode not in PAIR_MODES:
            raise DataError(f"pair mode must be one of {', '.join(PAIR_MODES)}, got {mode!r}")
        if not (math.isfinite(min_margin) and min_margin >= 0):
            raise DataError(Arg("min_margin"), f" must be a finite number >= 0, got {min_margin}")
        if min_margin > 0 and not self.has_scores:
            raise DataError(f"min_margin={min_margin:g} needs a score for every inpainting; '{self.source}' has none")
        s = self.samples
        if self.pairs:
            return [(b, w) for b, w in self.pairs if not min_margin or s[b].score - s[w].score >= min_margin]
        by_group: dict[str, list[int]] = {}
        for i, x in enumerate(s):
            by_group.setdefault(x.group, []).append(i)
        out = []
        for idx in by_group.values():
            use_rank = by == "rank" and all(s[i].rank is not None for i in idx)
            if not use_rank and any(s[i].score is None for i in idx):
                continue
            # a larger key is better: the negated rank, or the score
            key = {i: (-s[i].rank if use_rank else s[i].score) for i in idx}
            if mode == "best-worst":
                best = max(idx, key=lambda i: key[i])
                worst = min(idx, key=lambda i: key[i])
                cand = [(best, worst)] if key[best] != key[worst] else []
            else:
                cand = [(i, j) if key[i] > key[j] else (j, i)
                        for a, i in enumerate(idx) for j in idx[a + 1:] if key[i] != key[j]]
            out += [(b, w) for b, w in cand if not min_margin or s[b].score - s[w].score >= min_margin]
        return out

    def subset(self, groups: set[str]) -> RewardData:
        keep = [i for i, s in enumerate(self.samples) if s.group in groups]
        remap = {old: new for new, old in enumerate(keep)}
        pairs = [(remap[a], remap[b]) for a, b in self.pairs if a in remap and b in remap]
        return RewardData([self.samples[i] for i in keep], pairs, [], self.source)


# ------------------------------------------------------------------------------------------------
def read_reward_data(path: str | os.PathLike, *, max_bad_fraction: float = 0.01, verify: bool = True) -> RewardData:
    """Read and validate a reward dataset (official layout or manifest; see the module docstring).

    Raises:
        DataError: no recognisable layout, malformed labels, or more than ``max_bad_fraction`` bad samples.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset '{p}' does not exist; pass the folder of the official release or a manifest")
    if p.is_file():
        data = _read_manifest(p)
    elif any((p / n).is_file() for n in MANIFEST_NAMES):
        data = _read_manifest(next(p / n for n in MANIFEST_NAMES if (p / n).is_file()))
    elif (p / "inpaint").is_dir():
        data = _read_official(p)
    else:
        raise DataError(
            f"'{p}' is neither the official layout (a labels .json with inpaint/, masks_color/, masks/) nor has a "
            f"manifest ({' or '.join(MANIFEST_NAMES)}); see 'prefpaint train reward --help'"
        )
    return _validate(data, max_bad_fraction, verify)


def read_preference_pairs(path: str | os.PathLike, *, mode: str = "all", min_margin: float = 0.0,
                          max_bad_fraction: float = 0.01, verify: bool = True) -> tuple[RewardData, list[tuple[int, int]]]:
    """Read a rated dataset or a pairs manifest (as :func:`read_reward_data`) and its (better, worse) pairs.

    Pairs come from within a prompt: two inpaintings whose ranks differ (scores where there are no ranks),
    filtered by ``mode`` and ``min_margin`` (:meth:`RewardData.preference_pairs`); a pairs manifest's rows
    are the pairs. Every pair has a mask: a rated sample without one is a :class:`DataError`.

    Raises:
        DataError: unreadable data (as :func:`read_reward_data`), or no pair at all (every prompt has one
            inpainting, or all its ranks are equal, or no pair reaches ``min_margin``).
    """
    if mode not in PAIR_MODES:  # before the files are read
        raise DataError(f"pair mode must be one of {', '.join(PAIR_MODES)}, got {mode!r}")
    data = read_reward_data(path, max_bad_fraction=max_bad_fraction, verify=verify)
    pairs = data.preference_pairs(mode=mode, min_margin=min_margin)
    if not pairs:
        margin = f" with a score margin of at least {min_margin:g}" if min_margin else ""
        raise DataError(f"'{data.source}' gives no preference pair{margin}: every prompt has one inpainting or all its "
                        "ranks are equal; DPO needs two inpaintings of a prompt ranked differently")
    unmasked = next((data.samples[i] for p in pairs for i in p if data.samples[i].mask is None), None)
    if unmasked is not None:
        raise DataError(f"'{unmasked.image}' has no mask in '{data.source}'; DPO trains on the hole, so every pair "
                        "needs its mask (add a 'mask' column)")
    return data, pairs


def _read_official(root: Path) -> RewardData:
    labels = sorted(root.glob("*.json"))
    if len(labels) != 1:
        found = ", ".join(x.name for x in labels) or "none"
        raise DataError(f"official layout '{root}' needs exactly one labels .json at its top, found {found}")
    try:
        table = json.loads(labels[0].read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"labels file '{labels[0]}' is not valid JSON: {exc}") from exc
    if not isinstance(table, dict):
        raise DataError(f"labels file '{labels[0]}' must map '<imgid>_<k>' to [score, rank]")
    samples = []
    for key, value in sorted(table.items()):
        if "_" not in key:
            raise DataError(f"label key '{key}' in '{labels[0]}' is not of the form '<imgid>_<k>'")
        imgid = key.rsplit("_", 1)[0]
        score = (value[0] if value else None) if isinstance(value, (list, tuple)) else value  # [] is no score
        try:
            score = float(score)
        except (TypeError, ValueError) as exc:
            raise DataError(f"label '{key}' in '{labels[0]}' has score {value!r}; expected [score, rank]") from exc
        if not math.isfinite(score):
            raise DataError(f"label '{key}' in '{labels[0]}' has score {score}; every score must be a finite number")
        rank = _rank(value, key, labels[0])
        samples.append(RewardSample(
            image=_find_image(root / "inpaint", key), group=imgid, score=score,
            masked=_find_image(root / "masks_color", f"{imgid}_mask_color"),
            mask=_find_image(root / "masks", f"{imgid}_mask"), rank=rank,
        ))
    return RewardData(samples, source=str(root))


def _rank(value, key: str, labels: Path) -> float | None:
    """The rank of an official label ``[score, rank]`` (``None`` for a bare score)."""
    if not isinstance(value, (list, tuple)) or len(value) < 2 or value[1] is None:
        return None
    try:
        rank = float(value[1])
    except (TypeError, ValueError) as exc:
        raise DataError(f"label '{key}' in '{labels}' has rank {value[1]!r}; expected [score, rank]") from exc
    if not math.isfinite(rank):
        raise DataError(f"label '{key}' in '{labels}' has rank {value[1]}; every rank must be a finite number")
    return rank


def _find_image(folder: Path, stem: str) -> Path:
    return find_image(folder, stem, IMAGE_SUFFIXES) or folder / (stem + ".png")  # a missing one: reported by validation


def _read_manifest(path: Path) -> RewardData:
    rows = _manifest_rows(path)
    base = path.parent
    samples: list[RewardSample] = []
    pairs: list[tuple[int, int]] = []
    index: dict[tuple, int] = {}

    def rel(v, n=0):
        return manifest_path(base, None if v is None else str(v), f"{path.name} row {n}", inside=True)

    def add(sample: RewardSample) -> int:
        key = (sample.image, sample.masked, sample.mask)
        if key not in index:
            index[key] = len(samples)
            samples.append(sample)
        return index[key]

    for n, row in enumerate(rows, 1):
        masked, mask = rel(row.get("masked_image"), n), rel(row.get("mask"), n)
        if masked is None and mask is None:
            raise DataError(f"{path.name} row {n} has neither 'mask' nor 'masked_image'; every row needs one")
        group = str(row.get("group") or row.get("prompt") or (masked or mask))
        common = {"group": group, "masked": masked, "mask": mask, "mask_type": str(row.get("mask_type") or ""),
                      "split": (row.get("split") or None)}
        if "better" in row or "worse" in row:
            if not row.get("better") or not row.get("worse"):
                raise DataError(f"{path.name} row {n} is a pair but lacks 'better' or 'worse'")
            pairs.append((add(RewardSample(image=rel(row["better"], n), **common)),
                          add(RewardSample(image=rel(row["worse"], n), **common))))
        else:
            if not row.get("image") or row.get("score") in (None, ""):
                raise DataError(f"{path.name} row {n} needs 'image' and 'score' (or 'better' and 'worse')")
            try:
                score = float(row["score"])
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path.name} row {n} has score {row['score']!r}, not a number") from exc
            if not math.isfinite(score):
                raise DataError(f"manifest '{path}' row {n} has score {row['score']!r}; every score must be a finite number")
            add(RewardSample(image=rel(row["image"], n), score=score, **common))
    if pairs and any(s.score is not None for s in samples):
        raise DataError(f"{path.name} mixes scored rows and preference pairs; use one kind per manifest")
    return RewardData(samples, pairs, source=str(path))


def _manifest_rows(path: Path) -> list[dict]:
    # NaN parses here, so that the score check names the row and the column
    return [row for _, row in read_rows(path, where=lambda n: f"{path.name} line {n}", constants=True)]


# ------------------------------------------------------------------------------------------------
def _validate(data: RewardData, max_bad_fraction: float, verify: bool) -> RewardData:
    """Skip samples whose files are missing, unreadable, too large or of mismatched sizes (decoded whole,
    before any model loads); more than ``max_bad_fraction`` of them is a :class:`DataError`."""
    status: dict[Path, tuple[str | None, tuple[int, int] | None]] = {}

    def check(p: Path | None, what: str) -> tuple[str | None, tuple[int, int] | None]:
        if p is None:
            return None, None
        if p not in status:
            if not p.is_file():
                status[p] = ("missing", None)
            elif not verify:
                status[p] = (None, None)
            else:
                try:
                    # decoded whole: Pillow's verify() passes a truncated JPEG, which would stop training later
                    size = check_image_file(p, what=what, decode=True)
                    status[p] = (None, size)
                except ImageTooLargeError:
                    status[p] = (f"over the pixel limit of {get_max_pixels():,} (max_pixels)", None)
                except Exception as exc:  # noqa: BLE001 - any decoder error means a corrupt file
                    why = "truncated or corrupt" if isinstance(exc, InvalidInputError) else f"corrupt ({exc.__class__.__name__})"
                    status[p] = (why, None)
        return status[p]

    def problem(s: RewardSample) -> tuple[str, str] | None:
        sizes = {}
        for p, what in ((s.image, "image"), (s.masked, "masked image"), (s.mask, "mask")):
            why, size = check(p, what)
            if why:
                return str(p), why
            if size is not None:
                sizes[what] = (p, size)
        if "image" in sizes:  # a mask or masked image must be the image's size, or share its aspect ratio
            iw, ih = sizes["image"][1]
            for what in ("masked image", "mask"):
                if what in sizes:
                    p, (w, h) = sizes[what]
                    if (w, h) != (iw, ih) and abs((w / h) / (iw / ih) - 1.0) > 0.01:
                        return str(p), f"a {what} of {w}x{h} for an image of {iw}x{ih} (aspect ratios differ)"
        return None

    keep, skipped = [], []
    for i, s in enumerate(data.samples):
        bad = problem(s)
        if bad:
            skipped.append((s.image.name, *bad))
        else:
            keep.append(i)
    total = len(data.samples)
    if not total:
        raise DataError(f"dataset '{data.source}' has no samples")
    if skipped:
        frac = len(skipped) / total
        if frac > max_bad_fraction:  # one line: the refusal says it all
            first = "; ".join(f"{f} ({why})" for _, f, why in skipped[:3])
            raise DataError(
                f"{len(skipped)} of {total} samples ({100 * frac:.1f}%) have missing, corrupt, oversized or mismatched "
                f"files, more than {100 * max_bad_fraction:g}% allowed; first: {first}. Fix the files, or raise "
                "max_bad_fraction"
            )
        for name, f, why in skipped[:_MAX_NAMED]:
            log.warning("skipping sample %s: %s is %s", name, f, why)
        log.warning("skipped %d of %d samples (%.2f%%) with missing, corrupt, oversized or mismatched files",
                    len(skipped), total, 100 * frac)
        skipped = [(f, why) for _, f, why in skipped]
    remap = {old: new for new, old in enumerate(keep)}
    pairs = [(remap[a], remap[b]) for a, b in data.pairs if a in remap and b in remap]
    return RewardData([data.samples[i] for i in keep], pairs, skipped, data.source)


def split_by_group(data: RewardData, fractions=(0.7, 0.18, 0.12), seed: int = 0):
    """(train, val, test) with every prompt group wholly in one split.

    A manifest's ``split`` column, when present on every row, is honoured; otherwise groups are shuffled
    with ``seed`` and cut by ``fractions`` (default about the paper's 12k/3k/2k).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    given = {s.split for s in data.samples}
    if None not in given:
        unknown = given - {"train", "val", "test"}
        if unknown:
            raise DataError(f"manifest split values must be train, val or test; got {sorted(unknown)}")
        by = {name: {s.group for s in data.samples if s.split == name} for name in ("train", "val", "test")}
        clash = (by["train"] & by["val"]) | (by["train"] & by["test"]) | (by["val"] & by["test"])
        if clash:
            raise DataError(f"prompt group '{min(clash)}' appears in two splits; a prompt's inpaintings must share one")
        return tuple(data.subset(by[n]) for n in ("train", "val", "test"))
    groups = data.groups
    order = np.random.default_rng(seed).permutation(len(groups))
    n = len(groups)
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    if fractions[0] > 0 and n_train == 0:
        raise DataError(f"only {n} prompt groups: too few to split by {tuple(fractions)}")
    cut = [set(), set(), set()]
    for rank, gi in enumerate(order):
        cut[0 if rank < n_train else 1 if rank < n_train + n_val else 2].add(groups[gi])
    return tuple(data.subset(c) for c in cut)
