"""Raters' exported files → the labels JSON ``prefpaint train reward`` reads, with agreement between raters.

Each file is what the rating page exports::

    {"format": "prefpaint-ratings", "version": 1, "dataset": "<id>", "rater": "alice",
     "ratings": {"<imgid>_<k>": {"structure": 0-7, "texture": 0-7, "overall": 0-7}, ...}}

An inpainting's score is the paper's weighted combination ``0.15 * structure + 0.15 * texture + 0.7 *
overall``, averaged over the raters who rated it; its rank is its place within its prompt (1 = best, ties
share a rank). The labels are written as ``{"<imgid>_<k>": [score, rank]}``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from prefpaint_sdk import DataError, InvalidInputError
from prefpaint_sdk.utils import atomic_write_json, check_output_path

from .dataset import RateDataset, scan_dataset

__all__ = ["CRITERIA", "WEIGHTS", "ImportReport", "import_ratings", "read_ratings_file"]

CRITERIA = ("structure", "texture", "overall")
WEIGHTS = {"structure": 0.15, "texture": 0.15, "overall": 0.7}
FORMAT = "prefpaint-ratings"


@dataclass
class PairAgreement:
    raters: tuple[str, str]
    common: int  # inpaintings both rated
    mean_abs_diff: float | None  # of the combined score
    correlation: float | None  # Pearson, of the combined score
    order_agreement: float | None  # fraction of within-prompt pairs both order the same way (ties left out)


@dataclass
class ImportReport:
    labels_path: Path
    raters: list[str]
    labelled: int  # inpaintings with a score
    prompts: int
    unrated: int  # inpaintings of the dataset no rater rated fully
    pairs: list[PairAgreement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def mean_order_agreement(self) -> float | None:
        vals = [p.order_agreement for p in self.pairs if p.order_agreement is not None]
        return sum(vals) / len(vals) if vals else None


def _score(r: dict) -> float:
    return sum(WEIGHTS[c] * r[c] for c in CRITERIA)


def read_ratings_file(path: str | os.PathLike, dataset: RateDataset) -> tuple[str, dict[str, dict], list[str]]:
    """One rater's export: ``(rater, {key: {criterion: value}}, warnings)``; only complete triples are kept.

    Raises:
        DataError: not a ratings export, an unknown key, or a value that is not a whole number from 0 to 7.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"ratings file '{p}' does not exist or is not a file; pass the page's export")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"),
                         parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} is not JSON")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"ratings file '{p}' is not valid JSON ({exc}); pass the file the rating page exported") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("ratings"), dict):
        raise DataError(f"'{p}' is not a ratings export (expected {{\"format\": \"{FORMAT}\", \"ratings\": {{...}}}}); "
                        "pass the file the rating page exported")
    warnings = []
    if obj.get("dataset") not in (None, dataset.dataset_id):
        warnings.append(f"'{p.name}' was exported from another version of this dataset; keys are matched by name")
    rater = str(obj.get("rater") or p.stem).strip() or p.stem
    known = set(dataset.keys)
    out: dict[str, dict] = {}
    partial = 0
    for key, value in obj["ratings"].items():
        if key not in known:
            raise DataError(f"'{p}' rates '{key}', which is not an inpainting of '{dataset.root}'")
        if not isinstance(value, dict):
            raise DataError(f"'{p}': the rating of '{key}' must be an object of {', '.join(CRITERIA)}")
        triple = {}
        for c in CRITERIA:
            v = value.get(c)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 7:
                raise DataError(f"'{p}': {c} of '{key}' is {v!r}; every rating is a whole number from 0 to 7")
            triple[c] = v
        if len(triple) == len(CRITERIA):
            out[key] = triple
        elif triple:
            partial += 1
    if partial:
        warnings.append(f"'{p.name}': {partial} partly rated inpaintings left out (all three criteria are needed)")
    return rater, out, warnings


def _pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def _agreement(a: str, ra: dict, b: str, rb: dict, group_of: dict[str, str]) -> PairAgreement:
    common = sorted(set(ra) & set(rb))
    sa, sb = [_score(ra[k]) for k in common], [_score(rb[k]) for k in common]
    mad = sum(abs(x - y) for x, y in zip(sa, sb)) / len(common) if common else None
    same = total = 0
    for i, j in combinations(range(len(common)), 2):
        if group_of[common[i]] != group_of[common[j]]:
            continue
        da, db = sa[i] - sa[j], sb[i] - sb[j]
        if da == 0 or db == 0:
            continue
        total += 1
        same += (da > 0) == (db > 0)
    return PairAgreement((a, b), len(common), mad, _pearson(sa, sb), same / total if total else None)


def import_ratings(data: str | os.PathLike, files: list[str | os.PathLike], *, output: str | os.PathLike | None = None,
                   overwrite: bool = False) -> ImportReport:
    """Merge raters' exports into ``DATA/labels.json`` (or ``output``) and report their agreement.

    Raises:
        DataError: a file is not a valid export, or no inpainting was fully rated.
        OutputExistsError: the labels file exists and ``overwrite`` is false.
        InvalidInputError: another ``.json`` at the top of DATA would make ``train reward`` find two labels files.
    """
    from .checks import validate

    validate(data, files, do_import=True)
    dataset = scan_dataset(data)
    root = Path(data)
    labels_path = Path(output) if output is not None else root / "labels.json"
    if labels_path.parent.resolve() == root.resolve():
        others = [p for p in root.glob("*.json") if p.resolve() != labels_path.resolve()]
        if others:
            raise InvalidInputError(
                f"'{others[0]}' is a .json at the top of '{root}', where 'train reward' reads exactly one labels file; "
                "move it elsewhere (keep raters' exports outside the dataset folder)")
    check_output_path(labels_path, overwrite)
    raters: dict[str, dict] = {}
    warnings: list[str] = []
    for f in files:
        name, ratings, w = read_ratings_file(f, dataset)
        warnings += w
        base, i = name, 2
        while name in raters:
            name, i = f"{base}-{i}", i + 1
        raters[name] = ratings
    scores: dict[str, list[float]] = {}
    for ratings in raters.values():
        for key, triple in ratings.items():
            scores.setdefault(key, []).append(_score(triple))
    if not scores:
        raise DataError("no inpainting is fully rated (structure, texture and overall) in the files given")
    group_of = dataset.group_of
    mean = {k: round(sum(v) / len(v), 4) for k, v in scores.items()}
    labels: dict[str, list] = {}
    by_group: dict[str, list[str]] = {}
    for k in mean:
        by_group.setdefault(group_of[k], []).append(k)
    for keys in by_group.values():
        for k in keys:
            labels[k] = [mean[k], 1 + sum(1 for o in keys if mean[o] > mean[k])]
    atomic_write_json(labels_path, dict(sorted(labels.items())), overwrite=overwrite)
    names = list(raters)
    pairs = [_agreement(a, raters[a], b, raters[b], group_of) for a, b in combinations(names, 2)]
    return ImportReport(labels_path, names, len(labels), len(by_group), len(dataset.keys) - len(labels), pairs,
                        warnings)
