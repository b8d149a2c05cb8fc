"""A signal in the first moments of ``prefpaint`` ends it like any other: 130/143, one line, no traceback.

The console script (``prefpaint_cli._entry``) owns SIGINT and SIGTERM before the command modules are
imported; the handlers of ``run_main`` used to come only once every module was in, a few tenths of a second
later, and a signal before them met Python's defaults (SIGTERM: exit -15; SIGINT: a traceback). Signals are
timed from the moment the process owns SIGTERM (/proc's SigCgt mask, as in test_interrupts.py), since the
interpreter's own start before that (tens of milliseconds, longer on a loaded machine) runs no code of ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _signals import owns_sigterm

PREFPAINT = Path(sys.executable).with_name("prefpaint")
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", COLUMNS="2000", PYTHONWARNINGS="")
pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not Path("/proc/self/status").exists() and not os.environ.get("CI"),
                                 reason="times signals from /proc's SigCgt (Linux)")]




def _signalled(argv: list[str], sig: int, delay: float) -> tuple[int, str, str, float]:
    """Run ``prefpaint argv`` and send ``sig`` ``delay`` seconds after it owns its signals: (exit code, stdout,
    stderr, seconds from Popen until it owned them)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([str(PREFPAINT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = t0 + 60
        while not owns_sigterm(proc.pid):
            assert proc.poll() is None, f"prefpaint {argv} ended (exit {proc.returncode}) before it owned SIGTERM"
            assert time.monotonic() < deadline, "prefpaint never owned SIGTERM"
            time.sleep(0.001)
        owned = time.monotonic() - t0
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), owned


# --help ends about 0.3 s after the handlers are in (the imports): these delays all land during them
RUNS = [(["--help"], d) for d in (0.0, 0.02, 0.05)] + [(["doctor"], d) for d in (0.0, 0.02, 0.05, 0.1, 0.2)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("argv", "delay"), RUNS, ids=[f"{a[0].lstrip('-')}-{int(d * 1000)}ms" for a, d in RUNS])
def test_a_signal_during_start_up_exits_with_its_code(argv, delay, sig):
    code, out, err, owned = _signalled(argv, sig, delay)
    shown = (f"\nprefpaint {' '.join(argv)}: {signal.Signals(sig).name} {delay:.2f} s after it owned its signals "
             f"({owned:.3f} s after Popen): exit {code}\n--- stderr:\n{err[-3000:]}\n--- stdout:\n{out[-1000:]}")
    assert code == EXPECTED[sig], f"exit code{shown}"
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, f"traceback{shown}"
    assert err.strip().splitlines() == ["interrupted"], f"not the one 'interrupted' line{shown}"


def test_the_console_script_owns_the_signals_before_the_command_modules_load():
    """The handlers are in before typer, rich or any command module is imported (import order, -X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(PREFPAINT), "--help"], capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    order = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    first = order.index("prefpaint_sdk.interrupts")
    for heavy in ("typer", "rich", "prefpaint_cli._common", "prefpaint_cli.main"):
        assert order.index(heavy) > first, f"{heavy} is imported before the signal handlers are installed"
    assert "prefpaint_cli._entry" in order
