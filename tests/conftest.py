"""Test session set-up: offline, no network, tiny models built once per session."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: no test may reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import shutil  # noqa: E402
import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from _test_times import (  # noqa: E402, F401  (hooks: every run writes its per-test times)
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

ROOT = Path(__file__).resolve().parents[1]
# Read-only data shared beside the clone (never copied into the repository): <repo>/../shared unless told otherwise.
SHARED = Path(os.environ.get("PREFPAINT_SHARED") or ROOT.parent / "shared")

_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")
_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    # Loopback stays allowed (torch.distributed's gloo rendezvous); anything else is a bug in a test.
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect


def pytest_configure(config):
    # Tiny models gain nothing from intra-op threads, and on a shared 2-core machine oversubscription
    # made single calls 10-20x slower. Subprocess tests set their own.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _process_state_restored():
    """In-process runs change process-wide state (the pixel limit, our loggers' handlers and levels, the SIGTERM
    and SIGINT handlers, HF_HUB_OFFLINE): put it back after every test so no test depends on the ones before it."""
    import logging
    import signal

    from prefpaint_sdk.imaging import set_max_pixels

    loggers = [logging.getLogger(n) for n in ("prefpaint_sdk", "prefpaint_apps")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    sigterm, sigint = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "PREFPAINT_MAX_PIXELS", "HF_HUB_DISABLE_PROGRESS_BARS")}
    yield
    from prefpaint_sdk import interrupts

    interrupts.uninstall()  # SIGINT, SIGTERM and sys.unraisablehook as they were, and no signal on record
    set_max_pixels(None)
    for lg, handlers, level, propagate in saved:
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate
    signal.signal(signal.SIGTERM, sigterm)
    signal.signal(signal.SIGINT, sigint)  # a library's own handler (a server run in-process) must not outlive its test
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A tiny random diffusers inpainting pipeline saved as a folder, as real weights are."""
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    return save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("models") / "tiny-inpaint", seed=0)


@pytest.fixture(scope="session")
def tiny_inpainter(tiny_pipeline_dir):
    """An ``Inpainter`` over the tiny pipeline, loaded through ``from_pretrained`` like the real model."""
    from prefpaint_sdk import Inpainter

    return Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory, tiny_pipeline_dir):
    """``tiny_family_dir(family)``: a tiny random pipeline folder of that family ("sd", "sdxl", "flux-fill"),
    saved once per session with ``save_pretrained`` (the "sd" one is ``tiny_pipeline_dir``)."""
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    folders = {"sd": tiny_pipeline_dir}

    def get(family: str):
        if family not in folders:
            folders[family] = save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("models") / f"tiny-{family}",
                                                         seed=0, family=family)
        return folders[family]

    return get


def _built_once(tmp_path_factory, name: str, build):
    """A loader of a pipeline that ``build(cache_dir=...)`` trains once per run, not once per xdist worker: the
    workers' base folders share a parent, and the first worker to take the lock trains and saves while the
    others wait, then load it."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    cache.mkdir(exist_ok=True)

    def load():
        with FileLock(str(cache) + ".lock"):
            return build(cache_dir=cache)

    return load


@pytest.fixture(scope="session")
def pretrained_tiny_sd(tmp_path_factory):
    """``pretrained_tiny_sd()``: a fresh copy of the "pretrained" tiny SD pipeline
    (prefpaint_sdk.testing.pretrained), trained once per run (~1 min on one core) and loaded from disk."""
    from prefpaint_sdk.testing.pretrained import pretrained_tiny_inpaint_pipeline

    return _built_once(tmp_path_factory, "pretrained-tiny-sd",
                       lambda cache_dir: pretrained_tiny_inpaint_pipeline(2, cache_dir=cache_dir))


@pytest.fixture(scope="session")
def pretrained_tiny_flux(tmp_path_factory):
    """``pretrained_tiny_flux()``: a fresh copy of the "pretrained" tiny FLUX Fill pipeline
    (prefpaint_sdk.testing.pretrained), trained once per run (~50 s on one core) and loaded from disk."""
    from prefpaint_sdk.testing.pretrained import pretrained_tiny_flux_fill

    return _built_once(tmp_path_factory, "pretrained-tiny-flux",
                       lambda cache_dir: pretrained_tiny_flux_fill(2, cache_dir=cache_dir))


def in_ci() -> bool:
    """CI sets ``CI=true`` (``.ci/run`` does when it is unset); there nothing that a test needs may be missing."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_unless_ci(reason: str) -> None:
    """Skip on a user's machine, but fail under CI: a test that never runs in CI proves nothing."""
    if in_ci():
        pytest.fail(f"{reason}, and under CI=true this is a failure, not a skip")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless ``chromium`` (``scripts/test.sh`` installs it where apt-get can)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    skip_unless_ci("Chromium is not installed (bash scripts/test.sh installs Debian's chromium)")


@pytest.fixture(scope="session")
def chromedriver(chromium) -> str:
    """Debian's ``chromedriver`` for selenium (package ``chromium-driver``; ``scripts/test.sh`` installs it)."""
    for path in (shutil.which("chromedriver"), "/usr/lib/chromium/chromedriver"):
        if path and Path(path).is_file():
            return path
    skip_unless_ci("chromedriver is not installed (bash scripts/test.sh installs Debian's chromium-driver)")


@pytest.fixture(scope="session")
def official_v_inverse() -> Path:
    """The official trust matrix from ``$PREFPAINT_SHARED/data/official/V_inverse.pt`` (default ``<repo>/../shared``)."""
    path = SHARED / "data" / "official" / "V_inverse.pt"
    if not path.is_file():
        skip_unless_ci(f"{path} is not available (set PREFPAINT_SHARED to the folder holding data/official/)")
    return path


@pytest.fixture
def fresh_accelerate_state():
    """A test that builds an ``Accelerator`` with other settings (mixed precision) than the tests before it:
    accelerate's state is process-wide, so start from none and leave none. Function-scoped on purpose: a
    module-scoped fixture's Accelerator would lose its state if this ran between its tests."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def inpainters(tiny_family_dir):
    """``inpainters(family)``: the tiny model of ``family`` loaded once per test module."""
    from prefpaint_sdk import Inpainter

    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = Inpainter.from_pretrained(tiny_family_dir(family), device="cpu", dtype="float32")
        return cache[family]

    return get
