"""Per-test times of every run, written to ``test-times.json`` (git-ignored) at the repository root.

Imported by ``conftest.py`` for its hooks. Under pytest-xdist the workers' reports reach the controller, which
alone writes the file, so one run gives one file whatever the number of workers. Each test's time is its
set-up, call and tear-down together, as ``--durations`` counts them. ``PREFPAINT_TEST_TIMES`` names another
file (empty: write none).

The quick tier (``scripts/test.sh --quick``, everything not marked ``slow``) must stay a developer's loop, so
a test outside the slow tier that uses more than ``PREFPAINT_QUICK_LIMIT_S`` (default 20) CPU-seconds on its
own fails the run: make it cheaper or mark it ``slow``. CPU time, not wall time: on a shared machine a test's
wall time also measures its neighbours, its CPU time barely (a test's own subprocesses count once they end).
Quick-tier tests over the limit in wall time only are named with a warning. ``PREFPAINT_QUICK_LIMIT_S=0``
turns the check off.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_LIMIT_S = float(os.environ.get("PREFPAINT_QUICK_LIMIT_S") or 20)

_times: dict[str, dict] = {}
_CPU_START = pytest.StashKey[float]()
_start = time.time()


def _worker(config) -> bool:
    return hasattr(config, "workerinput")


def _cpu() -> float:
    """CPU seconds of this process and its finished children: unlike wall time, barely moved by a busy machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Runs where the test runs (an xdist worker too); the attribute travels with the report to the controller.
    outcome = yield
    now, start = _cpu(), item.stash.get(_CPU_START, None)
    outcome.get_result().cpu_seconds = round(now - start, 4) if start is not None else 0.0
    item.stash[_CPU_START] = now


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.stash[_CPU_START] = _cpu()
    yield


def pytest_runtest_logreport(report):
    entry = _times.setdefault(report.nodeid, {"seconds": 0.0, "cpu_seconds": 0.0, "outcome": "passed",
                                              "slow": "slow" in report.keywords})
    entry["seconds"] += report.duration
    entry["cpu_seconds"] += getattr(report, "cpu_seconds", 0.0)
    # A failure in any phase wins; otherwise a skip (set-up or call) is what the test did.
    if report.outcome == "failed" or (report.outcome == "skipped" and entry["outcome"] == "passed"):
        entry["outcome"] = report.outcome


def _target() -> Path | None:
    value = os.environ.get("PREFPAINT_TEST_TIMES")
    if value is None:
        return ROOT / "test-times.json"
    return Path(value) if value.strip() else None


def _over(key: str) -> list[tuple[str, float]]:
    """Quick-tier tests over the limit by ``key`` ("seconds" or "cpu_seconds"), the longest first."""
    if QUICK_LIMIT_S <= 0:
        return []
    over = [(k, v[key]) for k, v in _times.items() if not v["slow"] and v[key] > QUICK_LIMIT_S]
    return sorted(over, key=lambda kv: -kv[1])


def pytest_sessionfinish(session, exitstatus):
    if _worker(session.config) or not _times:
        return
    if _over("cpu_seconds") and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the summary names them
    target = _target()
    if target is None:
        return
    workers = getattr(session.config.option, "numprocesses", None) or 0
    ordered = dict(sorted(_times.items(), key=lambda kv: -kv[1]["seconds"]))
    total = sum(t["seconds"] for t in ordered.values())
    doc = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(time.time() - _start, 1),
        "workers": workers,
        "sum_of_test_seconds": round(total, 1),
        "sum_of_test_cpu_seconds": round(sum(t["cpu_seconds"] for t in ordered.values()), 1),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "tests": {k: {**v, "seconds": round(v["seconds"], 3), "cpu_seconds": round(v["cpu_seconds"], 3)}
                  for k, v in ordered.items()},
    }
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, target)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _worker(config) or not _times:
        return
    total = sum(t["seconds"] for t in _times.values())
    workers = getattr(config.option, "numprocesses", None) or 1
    target = _target()
    where = f", per-test times in {target}" if target is not None else ""
    cpu = sum(t["cpu_seconds"] for t in _times.values())
    terminalreporter.write_line(f"test times: {len(_times)} tests, {total:.0f} s summed over tests "
                                f"(about {total / workers:.0f} s on {workers} worker(s)), {cpu:.0f} CPU-seconds{where}")
    for nodeid, cpu_s in _over("cpu_seconds"):
        terminalreporter.write_line(f"error: quick-tier test used {cpu_s:.1f} CPU-seconds (> {QUICK_LIMIT_S:.0f}): "
                                    f"{nodeid} -- make it cheaper or mark it slow; this fails the run", red=True)
    heavy = {k for k, _ in _over("cpu_seconds")}
    for nodeid, seconds in _over("seconds"):
        if nodeid not in heavy:
            terminalreporter.write_line(f"warning: quick-tier test took {seconds:.1f} s of wall time (> "
                                        f"{QUICK_LIMIT_S:.0f} s; a busy machine inflates it): {nodeid}", yellow=True)
