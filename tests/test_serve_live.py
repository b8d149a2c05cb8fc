"""``prefpaint serve`` on loopback: the real ``openai`` client against the real command, bounded concurrency, and
a client that goes away while its job waits."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _serve_helpers import Gate, free_port, live_server, make_image, png, served_inpainter, square_hole
from PIL import Image

# The slow tier: a live `prefpaint serve` process or uvicorn server, real clients over loopback.
pytestmark = pytest.mark.slow

PREFPAINT = Path(sys.executable).with_name("prefpaint")
H, W = 48, 40


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("live-rm") / "rm")


def _wait_health(url: str, proc, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefpaint serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("prefpaint serve did not answer /health")


def test_openai_client_against_prefpaint_serve(tiny_pipeline_dir, rm_dir, tmp_path):
    import openai  # the dev extra installs it: the real client always runs
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PREFPAINT_API_KEY="k-123", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(PREFPAINT), "serve", "--model", str(tiny_pipeline_dir), "--reward-model", str(rm_dir),
                             "--port", str(port), "--steps", "2", "--device", "cpu", "--dtype", "float32", "--offline",
                             "--output-dir", str(tmp_path / "outs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_health(base, proc)
        img = make_image(H, W)
        hole = square_hole(H, W)
        mask = png(np.dstack([img, np.where(hole, 0, 255).astype(np.uint8)]))  # transparent = edit
        client = openai.OpenAI(base_url=base + "/v1", api_key="k-123", max_retries=0)
        res = client.images.edit(image=("in.png", png(img), "image/png"), mask=("mask.png", mask, "image/png"),
                                 prompt="", n=3, size="64x64")
        assert len(res.data) == 3
        chosen = 0
        for d in res.data:
            out = Image.open(io.BytesIO(base64.b64decode(d.b64_json)))
            assert out.size == (64, 64)
            extra = d.model_extra
            assert {"seed", "score", "bound", "trust", "chosen"} <= set(extra)
            assert np.isfinite(extra["score"]) and extra["bound"] > 0 and extra["trust"] >= 1.0
            chosen += bool(extra["chosen"])
        assert chosen == 1
        # response_format="url": the URL is served by the app, without the key, with the b64 answer's pixels
        as_url = client.images.edit(image=("in.png", png(img), "image/png"), mask=("mask.png", mask, "image/png"),
                                    prompt="", n=2, response_format="url", extra_body={"seed": 21})
        as_b64 = client.images.edit(image=("in.png", png(img), "image/png"), mask=("mask.png", mask, "image/png"),
                                    prompt="", n=2, extra_body={"seed": 21})
        assert [d.model_extra["seed"] for d in as_url.data] == [21, 22]
        for du, db in zip(as_url.data, as_b64.data):
            assert du.url.startswith(base + "/v1/files/") and du.b64_json is None
            with urllib.request.urlopen(du.url, timeout=10) as r:
                assert r.headers["Content-Type"] == "image/png"
                got = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))
            assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(base64.b64decode(db.b64_json))).convert("RGB")))
        models = client.models.list()
        assert models.data[0].id == str(tiny_pipeline_dir)
        bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.images.edit(image=("in.png", mask, "image/png"), prompt="")
        with pytest.raises(openai.BadRequestError, match="transparent"):
            client.images.edit(image=("in.png", png(img), "image/png"), prompt="")
        # the image and candidates of each call (3 + 2 + 2), nowhere else
        assert len(list((tmp_path / "outs").glob("*.png"))) == 4 + 3 + 3
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode in (0, 143), proc.stderr.read()  # SIGTERM ends a command with 143 after a clean shutdown


@pytest.fixture(scope="module")
def served(tiny_pipeline_dir, rm_dir):
    return served_inpainter(tiny_pipeline_dir, rm_dir)


def _post(base: str, n: int = 1) -> tuple[int, dict]:
    import httpx2 as httpx

    img = make_image(H, W)
    files = {"image": ("i.png", png(img), "image/png"),
             "mask": ("m.png", png((square_hole(H, W) * 255).astype(np.uint8)), "image/png")}
    r = httpx.post(base + "/v1/inpaint", files=files, data={"n": str(n), "steps": "1"}, timeout=60)
    return r.status_code, r.json()


def test_more_concurrent_requests_than_the_queue_holds(served):
    """12 concurrent clients, a queue of 4 with the worker held: 3 are accepted and answered, 9 get 429."""
    from prefpaint_apps.serve import create_app

    app = create_app(*served, max_queue=4, default_steps=1)
    with live_server(app) as base:
        q = app.state.queue
        gate = Gate()
        q.submit("gate", gate)
        assert gate.started.wait(10)
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(_post, base, 2) for _ in range(12)]
            deadline = time.time() + 30
            while sum(f.done() for f in futures) < 9:  # the refused ones answer at once
                assert time.time() < deadline, "refusals did not come back"
                time.sleep(0.02)
            assert q.busy == 4
            gate.release.set()
            results = [f.result(timeout=60) for f in futures]
    codes = sorted(code for code, _ in results)
    assert codes == [200] * 3 + [429] * 9, codes
    for code, body in results:
        if code == 200:
            assert len(body["images"]) == 2 and len(body["scores"]) == 2
        else:
            assert body["error"]["code"] == "queue_full"
    assert q.busy == 0


def test_a_client_that_goes_away_while_queued_cancels_its_job(served):
    from prefpaint_apps.serve import create_app

    app = create_app(*served, max_queue=4, default_steps=1)
    with live_server(app) as base:
        q = app.state.queue
        gate = Gate()
        q.submit("gate", gate)
        assert gate.started.wait(10)
        boundary = "b0undary"
        parts = []
        for name, data in (("image", png(make_image(H, W))), ("mask", png((square_hole(H, W) * 255).astype(np.uint8)))):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                         "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        port = int(base.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"POST /v1/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.time() + 10
        while q.busy < 2:
            assert time.time() < deadline, "the request was not queued"
            time.sleep(0.02)
        queued = [j for j in q._waiting][0]
        s.close()
        while queued.state != "cancelled":
            assert time.time() < deadline, f"the job was not cancelled: {queued.state}"
            time.sleep(0.02)
        assert q.busy == 1 and queued.step == 0  # never ran
        gate.release.set()
        code, _ = _post(base)
        assert code == 200


def test_health_answers_while_a_job_runs(served):
    import httpx2 as httpx
    from prefpaint_apps.serve import create_app

    app = create_app(*served, default_steps=1)
    with live_server(app) as base:
        gate = Gate()
        app.state.queue.submit("gate", gate)
        assert gate.started.wait(10)
        t = threading.Thread(target=_post, args=(base,))
        t.start()
        t0 = time.perf_counter()
        r = httpx.get(base + "/health", timeout=5)
        assert r.status_code == 200 and r.json()["queue"]["busy"] >= 1 and time.perf_counter() - t0 < 2
        gate.release.set()
        t.join(60)
