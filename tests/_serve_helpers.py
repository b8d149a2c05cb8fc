"""Shared pieces of the serve tests: PNG bytes, a tiny served model, and a live uvicorn server on loopback."""

from __future__ import annotations

import io
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
from PIL import Image


def png(a, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    (a if isinstance(a, Image.Image) else Image.fromarray(a, mode)).save(buf, "PNG")
    return buf.getvalue()


def make_image(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def square_hole(h: int = 48, w: int = 40) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[12:28, 10:26] = True
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_inpainter(pipeline_dir, reward_dir=None):
    """A fresh Inpainter over the tiny pipeline (create_app attaches the reward model to it)."""
    from prefpaint_sdk import Inpainter, RewardModel

    inp = Inpainter.from_pretrained(pipeline_dir, device="cpu", dtype="float32")
    rm = RewardModel.from_pretrained(reward_dir, device="cpu") if reward_dir is not None else None
    return inp, rm


@contextmanager
def live_server(app):
    """Run ``app`` under uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Gate:
    """A job that holds the worker until released: makes queue states deterministic in tests."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, job):
        self.started.set()
        self.release.wait(30)
        return {"gate": True}


@contextmanager
def serve_process(pipeline_dir, reward_dir, *, timeout: float = 120):
    """``prefpaint serve`` as a user starts it (a subprocess on a free loopback port) with ``pipeline_dir`` and the
    reward model ``reward_dir``; yields its base URL once ``/health`` answers, and stops it afterwards."""
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("PREFPAINT_API_KEY", None)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("prefpaint")), "serve", "--model", str(pipeline_dir),
                             "--reward-model", str(reward_dir), "--host", "127.0.0.1", "--port", str(port), "--device",
                             "cpu", "--dtype", "float32", "--offline", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prefpaint serve exited {proc.returncode}: {proc.stderr.read()}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("prefpaint serve did not answer /health") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
