"""``EvalReport``: the per-case records of an evaluation and the figures derived from them.

The records hold only raw facts (seeds, rewards, bounds, files, masked PSNR/SSIM per sample); every
figure (WinRate, its interval, means, variances) is computed from them on demand, so the statistics
settings can change without re-running anything (:meth:`EvalReport.with_stats`).

Figures for each S (see :mod:`.stats` for outcomes, ties and intervals):

* ``win_rate`` with ``ci_low`` / ``ci_high``: the model's best-of-S sample against the baseline's sample;
* ``mean_reward``: mean reward of the best-of-S samples; ``mean_bound``: mean trust bound of those samples;
* ``reward_var``: variance (ddof=1) of the rewards of all n x S samples, the spread a user sees;
* ``within_var``: mean over cases of the variance (ddof=1) of a case's S rewards (``None`` at S = 1);
* ``psnr`` / ``ssim``: mean masked PSNR / SSIM of the best-of-S samples over the cases with ground truth.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InvalidInputError
from ..files import atomic_write_bytes, strict_json_dumps, write_set
from ..reward.winrate import best_of, check_tie_tolerance, win_stats

__all__ = ["REPORT_FILES", "EvalReport"]

#: The files :meth:`EvalReport.write` puts in the output folder, written as one set.
REPORT_FILES = ("results.json", "results.csv", "report.html", "contact_sheet.png")

_CSV_FIELDS = ["case", "S", "best_index", "best_seed", "best_score", "best_bound", "baseline_seed", "baseline_score",
               "baseline_bound", "score_diff", "outcome", "best_psnr", "best_ssim", "baseline_psnr", "baseline_ssim",
               "mask_kind", "coverage"]


def _mean(xs) -> float | None:
    v = [x for x in xs if x is not None]
    return float(np.mean(v)) if v else None


def _var(xs) -> float:
    return float(np.var(xs, ddof=1)) if len(xs) > 1 else 0.0


@dataclass
class EvalReport:
    """The result of :func:`~prefpaint_sdk.evaluation.evaluate`.

    Attributes:
        config: the run's settings (models, steps, seed, masks, ...).
        samples: the S values reported.
        cases: one record per evaluated case (seeds, scores, bounds, files relative to ``out_dir``).
        failures: ``{"name", "error"}`` of the cases that could not be evaluated.
        out_dir: the folder holding the images (``None`` for a report detached from its files).
        tie_tolerance / ci / confidence / n_boot: statistics settings (see :mod:`.stats`).
    """

    config: dict[str, Any]
    samples: tuple[int, ...]
    cases: list[dict[str, Any]]
    failures: list[dict[str, str]] = field(default_factory=list)
    out_dir: Path | None = None
    tie_tolerance: float = 0.0
    ci: str = "wilson"
    confidence: float = 0.95
    n_boot: int = 2000

    # -------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.tie_tolerance = check_tie_tolerance(self.tie_tolerance)

    def with_stats(self, **settings) -> "EvalReport":
        """A copy with other statistics settings (``tie_tolerance``, ``ci``, ``confidence``, ``n_boot``).

        Raises:
            InvalidInputError: a ``tie_tolerance`` that is negative or not finite.
        """
        return replace(self, **settings)

    def pick(self, case: dict, s: int) -> int:
        """Index of ``case``'s best-of-``s`` sample."""
        return best_of(case["model"]["scores"], s)[0]

    def score_diff(self, case: dict, s: int) -> float:
        """Best-of-``s`` reward minus the baseline's reward, for one case."""
        return best_of(case["model"]["scores"], s)[1] - case["baseline"]["score"]

    def rows(self) -> list[dict[str, Any]]:
        """One dict of figures per S (see the module docstring), in increasing S.

        Raises:
            InvalidInputError: bad statistics settings, or an S larger than the samples drawn.
        """
        out = []
        base = [c["baseline"]["score"] for c in self.cases]
        for s in self.samples:
            picks = [self.pick(c, s) for c in self.cases]
            best = [c["model"]["scores"][i] for c, i in zip(self.cases, picks)]
            st = win_stats(best, base, tie_tolerance=self.tie_tolerance, ci=self.ci, confidence=self.confidence,
                           n_boot=self.n_boot, seed=int(self.config.get("seed", 0)))
            all_scores = [x for c in self.cases for x in c["model"]["scores"][:s]]
            gt = [(c, i) for c, i in zip(self.cases, picks) if c.get("has_ground_truth")]
            out.append(dict(
                S=s, n=st.n, wins=st.wins, ties=st.ties, losses=st.losses, win_rate=st.win_rate,
                ci_low=st.ci_low, ci_high=st.ci_high, ci=st.method, confidence=st.confidence,
                mean_reward=float(np.mean(best)),
                mean_bound=_mean(c["model"]["bounds"][i] for c, i in zip(self.cases, picks)),
                reward_var=_var(all_scores),
                within_var=float(np.mean([_var(c["model"]["scores"][:s]) for c in self.cases])) if s > 1 else None,
                psnr=_mean(c["model"]["psnr"][i] for c, i in gt), ssim=_mean(c["model"]["ssim"][i] for c, i in gt),
                n_ground_truth=len(gt),
                **self._reward_means([c["model"].get("rewards", {}) for c in self.cases], picks),
            ))
        return out

    def baseline_row(self) -> dict[str, Any]:
        """The baseline's figures: mean reward and bound, reward variance, masked PSNR/SSIM."""
        b = [c["baseline"] for c in self.cases]
        gt = [x for c, x in zip(self.cases, b) if c.get("has_ground_truth")]
        return dict(n=len(b), mean_reward=float(np.mean([x["score"] for x in b])), mean_bound=_mean(x["bound"] for x in b),
                    reward_var=_var([x["score"] for x in b]), psnr=_mean(x["psnr"] for x in gt),
                    ssim=_mean(x["ssim"] for x in gt), n_ground_truth=len(gt),
                    **self._reward_means([{k: [v] for k, v in x.get("rewards", {}).items()} for x in b], [0] * len(b)))

    def reward_labels(self) -> list[str]:
        """The rewards of a reward-stack judge, in order (empty when one reward model judged)."""
        return next((list(c["model"]["rewards"]) for c in self.cases if c["model"].get("rewards")), [])

    def _reward_means(self, per_case: list[dict], picks: list[int]) -> dict[str, Any]:
        """``{"rewards": {label: mean score of the picked samples}}`` for a stack judge; nothing otherwise."""
        labels = self.reward_labels()
        if not labels:
            return {}
        return {"rewards": {lab: _mean((r.get(lab) or [None] * (i + 1))[i] for r, i in zip(per_case, picks))
                            for lab in labels}}

    def case_rows(self) -> list[dict[str, Any]]:
        """One flat row per (case, S), as written to ``results.csv``."""
        rows = []
        for c in self.cases:
            b = c["baseline"]
            for s in self.samples:
                i = self.pick(c, s)
                d = c["model"]["scores"][i] - b["score"]
                outcome = "win" if d > self.tie_tolerance else ("loss" if d < -self.tie_tolerance else "tie")
                rows.append(dict(case=c["name"], S=s, best_index=i, best_seed=c["model"]["seeds"][i],
                                 best_score=c["model"]["scores"][i], best_bound=c["model"]["bounds"][i],
                                 baseline_seed=b["seed"], baseline_score=b["score"], baseline_bound=b["bound"],
                                 score_diff=d, outcome=outcome, best_psnr=c["model"]["psnr"][i],
                                 best_ssim=c["model"]["ssim"][i], baseline_psnr=b["psnr"], baseline_ssim=b["ssim"],
                                 mask_kind=c["mask_kind"], coverage=c["coverage"]))
        return rows

    # -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-able: settings, summary per S, baseline figures, cases, failures."""
        return dict(config=self.config, samples=list(self.samples),
                    stats=dict(tie_tolerance=self.tie_tolerance, ci=self.ci, confidence=self.confidence, n_boot=self.n_boot,
                               ties="a tie counts as half a win"),
                    summary=self.rows(), baseline=self.baseline_row(), cases=self.cases, failures=self.failures)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text (:meth:`to_dict`); also written atomically to ``path`` when given."""
        text = strict_json_dumps(self.to_dict(), where=path)
        if path is not None:
            atomic_write_bytes(path, (text + "\n").encode())
        return text

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """:meth:`case_rows` as CSV text (empty cells for missing values); also written to ``path``."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in self.case_rows():
            w.writerow({k: ("" if r[k] is None else r[k]) for k in _CSV_FIELDS})
        if path is not None:
            atomic_write_bytes(path, buf.getvalue().encode())
        return buf.getvalue()

    def to_html(self, path: str | os.PathLike, *, embed: bool = False) -> Path:
        """Write the visual report (summary table, one grid per case, sortable by score difference).

        Args:
            path: the HTML file. Images are referenced relative to it, or embedded when ``embed``.
            embed: embed JPEG thumbnails, making one self-contained file.

        Raises:
            InvalidInputError: the report has no image folder (``out_dir`` is ``None``).
        """
        from .html import write_html

        return write_html(self, Path(path), embed=embed)

    def contact_sheet(self, path: str | os.PathLike, *, per_side: int = 4, tile: int = 160) -> Path:
        """Write a PNG summary: the WinRate per S and the ``per_side`` biggest wins and losses at max S.

        Each row shows input with the mask tinted, the baseline, and the model's best-of-S sample, each with
        its reward. See :func:`~prefpaint_sdk.evaluation.sheet.write_contact_sheet`.
        """
        from .sheet import write_contact_sheet

        return write_contact_sheet(self, Path(path), per_side=per_side, tile=tile)

    def summary(self) -> str:
        """A plain-text table of the figures per S and the baseline's, for logs and terminals."""
        def f(x, spec=".4f"):
            return "n/a" if x is None else format(x, spec)

        lines = [f"model {self.config.get('model')} vs baseline {self.config.get('baseline')} "
                 f"({len(self.cases)} cases, {len(self.failures)} skipped; ties count half; "
                 f"{int(self.confidence * 100)}% CI {self.ci})",
                 f"{'S':>4}  {'WinRate':>8}  {'CI':>17}  {'W/T/L':>11}  {'reward':>8}  {'bound':>7}  {'var':>8}  "
                 f"{'PSNR':>6}  {'SSIM':>6}" + "".join(f"  {lab[:14]:>14}" for lab in self.reward_labels())]
        more = lambda r: "".join(f"  {f(v):>14}" for v in r.get("rewards", {}).values())  # noqa: E731 - a stack's columns
        for r in self.rows():
            ci = f"[{r['ci_low'] * 100:5.1f}%, {r['ci_high'] * 100:5.1f}%]"
            wtl = f"{r['wins']}/{r['ties']}/{r['losses']}"
            lines.append(f"{r['S']:>4}  {r['win_rate'] * 100:7.1f}%  {ci:>17}  {wtl:>11}  {f(r['mean_reward']):>8}  "
                         f"{f(r['mean_bound'], '.3f'):>7}  {f(r['reward_var']):>8}  {f(r['psnr'], '.2f'):>6}  "
                         f"{f(r['ssim'], '.3f'):>6}" + more(r))
        b = self.baseline_row()
        lines.append(f"{'base':>4}  {'':>8}  {'':>17}  {'':>11}  {f(b['mean_reward']):>8}  {f(b['mean_bound'], '.3f'):>7}  "
                     f"{f(b['reward_var']):>8}  {f(b['psnr'], '.2f'):>6}  {f(b['ssim'], '.3f'):>6}" + more(b))
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write results.json, results.csv, report.html and contact_sheet.png into ``out_dir``."""
        out = Path(out_dir)
        paths = dict(zip(("json", "csv", "html", "sheet"), (out / name for name in REPORT_FILES)))
        # One output set: the four appear together (each writer fills a temporary file beside its target).
        write_set({paths["json"]: lambda tmp: self.to_json(tmp), paths["csv"]: lambda tmp: self.to_csv(tmp),
                   paths["html"]: lambda tmp: self.to_html(tmp), paths["sheet"]: lambda tmp: self.contact_sheet(tmp)},
                  overwrite=True)
        return paths

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EvalReport":
        """Read a report back from ``results.json`` (or the output folder holding it).

        Raises:
            DataError: the file is missing or not a PrefPaint evaluation.
        """
        p = Path(path)
        p = p / "results.json" if p.is_dir() else p
        try:
            d = json.loads(p.read_text())
            st = d.get("stats", {})
            return cls(config=d["config"], samples=tuple(d["samples"]), cases=d["cases"], failures=d.get("failures", []),
                       out_dir=p.parent, tie_tolerance=st.get("tie_tolerance", 0.0), ci=st.get("ci", "wilson"),
                       confidence=st.get("confidence", 0.95), n_boot=st.get("n_boot", 2000))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"'{p}' is not a readable evaluation results.json ({exc}); run prefpaint eval first") from exc

    def _image_path(self, rel: str) -> Path:
        if self.out_dir is None:
            raise InvalidInputError("this report has no image folder (out_dir is None); load it from its output folder")
        return Path(self.out_dir) / rel
