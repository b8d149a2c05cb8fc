"""The per-test times every run writes (tests/_test_times.py), and the quick tier's CPU limit, on 2 xdist workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

_CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from _test_times import pytest_runtest_logreport, pytest_runtest_makereport, pytest_runtest_protocol  # noqa
from _test_times import pytest_sessionfinish, pytest_terminal_summary  # noqa
"""
_TESTS = """
import time
import pytest

def _busy(s):
    t = time.process_time()
    while time.process_time() - t < s:
        pass

def test_busy():
    _busy(0.6)

@pytest.mark.slow
def test_busy_but_slow():
    _busy(0.6)

def test_sleeps():
    time.sleep(0.6)
"""


def _run(tmp_path: Path, limit: str) -> tuple[int, str, dict]:
    # (A run within the limit passing is what every other run of the suite shows.)
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_x.py").write_text(_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers = slow: the slow tier\n")
    times = tmp_path / "times.json"
    env = {**os.environ, "PREFPAINT_QUICK_LIMIT_S": limit, "PREFPAINT_TEST_TIMES": str(times)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "test_x.py"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr, json.loads(times.read_text())


def test_times_are_written_and_a_heavy_quick_test_fails_the_run(tmp_path):
    code, out, doc = _run(tmp_path, "0.5")
    assert code == 1, out
    assert "3 passed" in out
    errors = [line for line in out.splitlines() if line.startswith("error: quick-tier test used")]
    assert len(errors) == 1 and "test_x.py::test_busy " in errors[0]  # the slow tier may take longer
    tests = doc["tests"]
    assert set(tests) == {"test_x.py::test_busy", "test_x.py::test_busy_but_slow", "test_x.py::test_sleeps"}
    assert tests["test_x.py::test_busy"]["cpu_seconds"] >= 0.6 and not tests["test_x.py::test_busy"]["slow"]
    assert tests["test_x.py::test_busy_but_slow"]["slow"]
    # sleeping is wall time, not CPU time: a warning only
    assert tests["test_x.py::test_sleeps"]["seconds"] >= 0.6 > tests["test_x.py::test_sleeps"]["cpu_seconds"]
    assert "warning: quick-tier test took" in out
    assert doc["workers"] == 2 and doc["sum_of_test_seconds"] >= 1.8

