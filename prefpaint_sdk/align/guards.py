"""Guards against reward hacking: a gold reward watched against the proxy, and the best weights by gold.

RL maximises the training ("proxy") reward, and a policy can learn to please that reward without getting
better (brighter holes for a brightness-loving reward model, say). A second, independent "gold" reward
scored on the same held-out samples shows it: the proxy's held-out mean rises while the gold's falls.

* :class:`HackingMonitor` watches the pairs (proxy mean, gold mean) of successive evaluations and fires
  after ``patience`` consecutive evaluations in which the proxy rose and the gold fell;
* :class:`EvalGuards` runs it inside :meth:`Aligner.train <prefpaint_sdk.align.trainer.Aligner.train>`:
  one row per evaluation (proxy, gold, bias audit, the training KL estimates), a warning or a clean stop
  (``on_hacking``), and the weights of the evaluation with the best gold mean kept in ``eval/best/``.

Files under the run folder (inside ``eval/``, which an ``overwrite`` run removes with the rest):

* ``eval/guards.json``: every evaluation row so far; a resumed run replays the rows up to its checkpoint's
  iteration, so the hacking streak and the best gold mean continue as if uninterrupted;
* ``eval/best/``: ``trainable.safetensors`` (the trained tensors, as in a checkpoint) and ``best.json``
  (iteration, gold and proxy means), replaced atomically whenever the gold mean improves.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from ..errors import Arg, ConfigError
from ..state import json_safe, read_json, write_json_state

__all__ = ["BEST_DIR", "EvalGuards", "HackingMonitor", "check_guard_state", "check_guards"]

log = logging.getLogger(__name__)

BEST_DIR = Path("eval") / "best"
GUARDS_FILE = Path("eval") / "guards.json"
_BEST_KEYS = {"iteration": int, "gold_mean": (int, float)}


class HackingMonitor:
    """Counts consecutive evaluations in which the proxy mean rose and the gold mean fell.

    Each finite (proxy, gold) pair is compared with the previous finite one: a strict rise of the proxy
    together with a strict fall of the gold extends the streak; anything else (a tie in either, both up,
    both down) resets it to 0. A pair with a NaN is no evidence either way: it is skipped, neither
    extending nor resetting the streak, and the next finite pair is compared with the last finite one.
    The first pair only sets the reference. So ``patience`` N needs N + 1 evaluations.

    Evaluation means move with the sampling noise, so a streak of small moves can be noise alone (seen in
    ``benchmarks/exp_learning.py``): with ``min_drop`` the gold mean must also have fallen by more than
    that over the streak (e.g. twice its seed noise) before it counts as hacking.

    Args:
        patience: consecutive hacking evaluations that make :attr:`hacking` true (>= 1).
        min_drop: how far the gold mean must fall over the streak (>= 0; 0: any fall).
    """

    def __init__(self, patience: int = 3, min_drop: float = 0.0):
        if int(patience) < 1:
            raise ConfigError(Arg("hacking_patience"), f" must be >= 1, got {patience}")
        if not (math.isfinite(min_drop) and min_drop >= 0):
            raise ConfigError(Arg("hacking_min_drop"), f" must be a finite number >= 0, got {min_drop}")
        self.min_drop = float(min_drop)
        self.patience = int(patience)
        self.streak = 0
        self.last: tuple[float, float] | None = None
        self.first_of_streak: tuple[float, float] | None = None

    def update(self, proxy: float | None, gold: float | None) -> bool:
        """Take one evaluation's means; returns :attr:`hacking` after it."""
        if proxy is None or gold is None or not (math.isfinite(proxy) and math.isfinite(gold)):
            return self.hacking
        pair = (float(proxy), float(gold))
        if self.last is not None and pair[0] > self.last[0] and pair[1] < self.last[1]:
            if self.streak == 0:
                self.first_of_streak = self.last
            self.streak += 1
        else:
            self.streak = 0
            self.first_of_streak = None
        self.last = pair
        return self.hacking

    @property
    def hacking(self) -> bool:
        """True while the streak has reached ``patience`` and the gold mean fell by more than ``min_drop`` over it."""
        if self.streak < self.patience or self.first_of_streak is None or self.last is None:
            return False
        return self.first_of_streak[1] - self.last[1] > self.min_drop

    def describe(self) -> str:
        """One line with the figures: the streak and how proxy and gold moved over it."""
        if self.first_of_streak is None or self.last is None:
            return "no hacking pattern"
        (p0, g0), (p1, g1) = self.first_of_streak, self.last
        return (f"the proxy reward rose {p0:.4g} -> {p1:.4g} while the gold reward fell {g0:.4g} -> {g1:.4g} "
                f"over {self.streak} consecutive evaluations (patience {self.patience})")


def check_guards(config, gold_reward: Any) -> None:  # noqa: ANN001 - an AlignConfig
    """Refuse ``on_hacking='stop'`` without a gold reward (nothing could ever stop the run), and a gold reward
    under ``fsdp``. Model-free.

    Raises:
        ConfigError: ``on_hacking='stop'`` and no gold reward; ``fsdp`` with a gold reward.
    """
    if getattr(config, "fsdp", False) and gold_reward is not None:
        raise ConfigError(Arg("fsdp", True), " does not take a gold reward yet (the best weights by gold are saved "
                          "from the main process, which holds only its shard); drop ", Arg("gold_reward"), " or fsdp")
    if config.on_hacking == "stop" and gold_reward is None:
        raise ConfigError(Arg("on_hacking", "stop"), " needs a gold reward to watch; pass ", Arg("gold_reward", "NAME|ID"),
                          " or use ", Arg("on_hacking", "warn"))


def _mean_of(history: list[dict], key: str) -> float | None:
    vals = [float(h[key]) for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    return sum(vals) / len(vals) if vals else None


class EvalGuards:
    """The per-evaluation bookkeeping of one :meth:`Aligner.train` call (see the module docstring).

    Args:
        config: the run's :class:`~prefpaint_sdk.align.config.AlignConfig` (``on_hacking``, ``hacking_patience``,
            ``kl_coef``).
        output_dir: the run folder. accelerator: the run's; the main process decides and writes, every
            process gets the decision. params: the trained tensors by name (saved as the best weights).
        has_gold: whether a gold reward is scored (without one there is nothing to watch or keep).
        iteration: the iteration the run starts (or resumes) at: rows after it are dropped on resume.
    """

    def __init__(self, config, output_dir, accelerator, params: dict[str, torch.Tensor], has_gold: bool,
                 iteration: int = 0):
        self.config, self.acc, self.params, self.has_gold = config, accelerator, params, has_gold
        self.output_dir = Path(output_dir)
        self.monitor = HackingMonitor(config.hacking_patience, config.hacking_min_drop)
        self.rows: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.stopped_reason: str | None = None
        self.stop = False
        self._last_eval_iteration = iteration
        path = self.output_dir / GUARDS_FILE
        if iteration > 0 and path.is_file():
            for row in read_guard_rows(path):
                if row.get("iteration", math.inf) <= iteration:
                    self._observe(row)
            best = self.output_dir / BEST_DIR / "best.json"
            if best.is_file():  # the weights on disk are the ones to beat (an exact resume reproduces them)
                self.best = read_json(best, what="best-weights marker", fix=_fix(best), keys=_BEST_KEYS)

    # ------------------------------------------------------------------------------------------
    def _observe(self, row: dict[str, Any]) -> bool:
        """Feed a row to the monitor and the best tracker; returns whether the gold mean improved."""
        self.rows.append(row)
        self.monitor.update(row.get("proxy_mean"), row.get("gold_mean"))
        gold = row.get("gold_mean")
        improved = gold is not None and math.isfinite(gold) and (self.best is None or gold > self.best["gold_mean"])
        if improved:
            self.best = {"iteration": row["iteration"], "gold_mean": gold, "proxy_mean": row.get("proxy_mean")}
        return improved

    def record(self, ev, iteration: int, history: list[dict]) -> dict[str, Any]:  # noqa: ANN001 - an EvalResult
        """One evaluation: its row (logged and returned), the hacking check, the best weights."""
        since = [h for h in history if h.get("iteration", 0) > self._last_eval_iteration]
        self._last_eval_iteration = iteration
        row: dict[str, Any] = {
            "iteration": iteration, "mean_reward": ev.mean_reward, "win_rate": ev.win_rate,
            "proxy_mean": ev.mean_reward, "gold_mean": ev.gold_mean, **ev.audit,
            **{f"reward/{k}": v for k, v in getattr(ev, "parts", {}).items()},  # a stack's rewards, each
            # The trainer's own estimates over the iterations since the last evaluation, not a KL measured
            # on the evaluation samples: approx_kl is the PPO estimate of KL(rollout policy || trained policy)
            # within an iteration; kl_ref the closed-form KL to the starting model, computed only when kl_coef > 0.
            "train_approx_kl": _mean_of(since, "approx_kl"),
            "train_kl_ref": _mean_of(since, "kl_ref") if self.config.algo_settings.get("kl_coef", 0) > 0 else None,
        }
        stop = False
        if self.acc.is_main_process:
            improved = self._observe(row)
            row["hacking_streak"] = self.monitor.streak
            if improved and self.has_gold:
                self._save_best()
            if self.has_gold and self.monitor.hacking:
                what = self.monitor.describe()
                if self.config.on_hacking == "stop":
                    stop = True
                    self.stopped_reason = f"reward hacking suspected at iteration {iteration}: {what}"
                    log.warning("stopping: %s; the best weights by gold reward (iteration %s) are in %s",
                                self.stopped_reason, self.best and self.best["iteration"], self.output_dir / BEST_DIR)
                else:
                    log.warning("reward hacking suspected at iteration %d: %s", iteration, what)
            write_json_state(self.output_dir / GUARDS_FILE, {"rows": json_safe(self.rows)})
        if self.acc.num_processes > 1:  # evaluation runs on the main process; every process must stop together
            flag = self.acc.reduce(torch.tensor([float(stop)], device=self.acc.device), reduction="sum")
            stop = bool(flag.item() > 0)
            if stop and self.stopped_reason is None:
                self.stopped_reason = f"reward hacking suspected at iteration {iteration} (see the main process's log)"
        self.stop = stop
        return row

    def _save_best(self) -> None:
        """Replace ``eval/best/`` atomically with the current trained tensors and the marker."""
        from ..files import atomic_dir
        from .checkpoint import save_tensors

        with atomic_dir(self.output_dir / BEST_DIR) as tmp:
            save_tensors(self.params, tmp / "trainable.safetensors")
            write_json_state(tmp / "best.json", self.best)

    def restore_best(self) -> dict[str, Any] | None:
        """Load the best weights by gold into ``params`` (every process); returns the marker, or ``None``."""
        self.acc.wait_for_everyone()
        folder = self.output_dir / BEST_DIR
        if not (folder / "best.json").is_file():
            return None
        from .checkpoint import load_tensors

        marker = read_json(folder / "best.json", what="best-weights marker", fix=_fix(folder / "best.json"),
                           keys=_BEST_KEYS)
        tensors = load_tensors(folder / "trainable.safetensors", keys=self.params)
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[n].to(p.device, p.dtype))
        log.info("restored the best weights by gold reward (iteration %d) from %s", marker["iteration"], folder)
        return marker


def _fix(path: Path) -> str:
    return f"delete '{path.parent}' (the run then keeps no best weights until the gold reward improves again)"


def read_guard_rows(path: Path) -> list[dict[str, Any]]:
    """The evaluation rows of ``eval/guards.json`` (null figures back to NaN where the monitor reads them).

    Raises:
        CorruptFileError: a missing, truncated or wrong-type file, naming it and the fix.
    """
    fix = f"delete '{path}' to resume without the earlier evaluations' hacking streak"
    rows = read_json(path, what="guard state", fix=fix, keys={"rows": list})["rows"]
    return [r for r in rows if isinstance(r, dict)]


def check_guard_state(output_dir) -> None:  # noqa: ANN001 - a path
    """Check a run folder's guard files (``eval/guards.json``, ``eval/best/best.json``) before resuming.

    Model-free, so a damaged file is reported before anything loads.

    Raises:
        CorruptFileError: a truncated, empty or wrong-type file, naming it and the fix.
    """
    out = Path(output_dir)
    if (out / GUARDS_FILE).exists():
        read_guard_rows(out / GUARDS_FILE)
    best = out / BEST_DIR / "best.json"
    if best.exists():
        read_json(best, what="best-weights marker", fix=_fix(best), keys=_BEST_KEYS)
