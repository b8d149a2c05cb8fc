"""``remote=http://HOST:PORT``: a real ``prefpaint serve`` on loopback gives the local model's scores, and a tiny
fake server that misbehaves (NaN, too few scores, 500, a slow body, gone) is refused in one line."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from _serve_helpers import free_port
from PIL import Image
from typer.testing import CliRunner

from prefpaint_sdk.errors import ModelNotFoundError, RemoteRewardError
from prefpaint_sdk.reward.remote import RemoteReward

PREFPAINT = Path(sys.executable).with_name("prefpaint")
runner = CliRunner()
pytestmark = pytest.mark.timeout(300)


def _batch(n=3, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=g)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[:, 10:30, 12:36] = True
    return images, masks, images * ~masks[:, None]


# ------------------------------------------------------------------------------------------------
# a real prefpaint serve


@pytest.fixture(scope="module")
def served(tiny_pipeline_dir, tmp_path_factory):
    """``prefpaint serve`` with the tiny pipeline and a tiny reward model, on a free loopback port."""
    from _serve_helpers import serve_process

    from prefpaint_sdk.testing import save_tiny_reward_model

    rm = save_tiny_reward_model(tmp_path_factory.mktemp("remote-rm") / "rm")
    with serve_process(tiny_pipeline_dir, rm) as url:
        yield url, rm


@pytest.mark.slow  # a second process (prefpaint serve)
def test_remote_gives_the_local_models_scores(served):
    from prefpaint_sdk.reward import RewardModel
    from prefpaint_sdk.reward.prefpaint import PrefPaintReward

    url, rm = served
    images, masks, masked = _batch(5)
    local = PrefPaintReward(RewardModel.from_pretrained(rm, device="cpu"))(images, masks, masked)
    remote = RemoteReward(url, concurrency=2)(images, masks, masked, prompts=["a prompt"] * 5)
    assert torch.allclose(remote.scores, local.scores, atol=1e-5)
    assert remote.bounds is not None and torch.allclose(remote.bounds, local.bounds, atol=1e-5)
    assert remote.trust is not None and torch.allclose(remote.trust, local.trust, atol=1e-5)


@pytest.mark.slow
def test_score_cli_with_a_remote_and_the_same_local_model(served, tmp_path):
    from prefpaint_cli.main import app

    url, rm = served
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    m = np.zeros((40, 48), np.uint8)
    m[10:30, 12:36] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    r = runner.invoke(app, ["score", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "--reward", f"prefpaint={rm}",
                            "--reward", f"remote={url}", "--reward", "seam", "--json", "--quiet", "--device", "cpu",
                            "--offline"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)["rewards"]
    assert list(rec) == ["prefpaint", "remote", "seam"]
    assert rec["remote"]["score"] == pytest.approx(rec["prefpaint"]["score"], abs=1e-5)
    assert rec["remote"]["bound"] == pytest.approx(rec["prefpaint"]["bound"], abs=1e-5)
    assert rec["seam"]["score"] < 0 and rec["seam"]["bound"] is None


# ------------------------------------------------------------------------------------------------
# a fake server that misbehaves


class _Fake(BaseHTTPRequestHandler):
    mode = "ok"
    hits = 0

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = type(self).mode
        if mode == "500":
            return self._send(500, b'{"error": {"message": "judge crashed"}}')
        if mode == "400":
            return self._send(400, b'{"error": {"message": "bad image"}}')
        if mode == "slow":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "200")
            self.end_headers()
            for _ in range(200):  # one byte every 0.1 s: each read is quick, the whole body is not
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
            return
        body = {"ok": {"score": 1.5, "bound": 0.5}, "nan": {"score": float("nan")}, "few": {"scores": []},
                "none": {"id": "x"}, "text": {"score": "high"}}[mode]
        self._send(200, json.dumps(body).encode())

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake():
    handler = type("Handler", (_Fake,), {"mode": "ok", "hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_fake_server_answers_are_read(fake):
    url, handler = fake
    out = RemoteReward(url)(*_batch(3))
    assert out.scores.tolist() == [1.5] * 3 and out.bounds.tolist() == [0.5] * 3 and handler.hits == 3


def test_a_remote_and_a_constraint_as_the_trainers_reward(fake):
    """What ``train align --gold-reward remote=URL --gold-reward seam`` resolves to, through the trainer's wrapper."""
    import math

    from prefpaint_sdk.align.rewards import as_reward_fn
    from prefpaint_sdk.reward.constraints import seam
    from prefpaint_sdk.reward.specs import load_reward

    url, _ = fake
    images, masks, masked = _batch(2)
    rb = as_reward_fn(load_reward(f"remote={url}"))(images, masks, masked)
    assert rb.scores.tolist() == [1.5, 1.5] and rb.trust.tolist() == pytest.approx([math.exp(-0.05 * 0.5 + 0.7)] * 2)
    ens = as_reward_fn(load_reward([f"remote={url}", "seam"]))(images, masks, masked)
    assert ens.scores.tolist() == pytest.approx(((1.5 + seam(images, masks)) / 2).tolist())
    assert ens.bounds is None  # seam has no bound, so the ensemble has none


@pytest.mark.parametrize("mode, pattern", [
    ("nan", "non-finite or non-numeric score nan"), ("text", "non-numeric score 'high'"),
    ("few", "answered 0 scores for 1 image"), ("none", "answered 0 scores for image 0"),
])
def test_bad_answers_are_refused(fake, mode, pattern):
    url, handler = fake
    handler.mode = mode
    with pytest.raises(RemoteRewardError, match=pattern):
        RemoteReward(url, retries=2, concurrency=1)(*_batch(1))
    assert handler.hits == 1  # a wrong answer is not retried


def test_500_is_retried_then_refused_and_400_is_not_retried(fake):
    url, handler = fake
    handler.mode = "500"
    with pytest.raises(RemoteRewardError, match="answered HTTP 500: judge crashed after 3 tries"):
        RemoteReward(url, retries=2, backoff=0.01)(*_batch(1))
    assert handler.hits == 3
    handler.mode, handler.hits = "400", 0
    with pytest.raises(RemoteRewardError, match="answered HTTP 400: bad image"):
        RemoteReward(url, retries=2, backoff=0.01)(*_batch(1))
    assert handler.hits == 1


def test_slow_body_times_out_on_the_whole_exchange(fake):
    url, handler = fake
    handler.mode = "slow"
    t0 = time.monotonic()
    with pytest.raises(RemoteRewardError, match="did not answer within 1 s after 1 tries"):
        RemoteReward(url, timeout=1.0, retries=0)(*_batch(1))
    assert time.monotonic() - t0 < 6  # the body would take 20 s


def test_server_gone_is_one_line(tmp_path):
    from prefpaint_cli.main import app

    port = free_port()  # nobody listens there
    with pytest.raises(ModelNotFoundError, match=f"127.0.0.1:{port} is unreachable .* after 2 tries"):
        RemoteReward(f"http://127.0.0.1:{port}", retries=1, backoff=0.01)(*_batch(1))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "m.png")
    r = runner.invoke(app, ["score", str(tmp_path / "i.png"), str(tmp_path / "m.png"), "--reward",
                            f"remote=http://127.0.0.1:{port}"], env={"COLUMNS": "2000"})
    assert r.exit_code == 3 and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_score_cli_refuses_a_nan_answer_in_one_line(fake, tmp_path):
    from prefpaint_cli.main import app

    url, handler = fake
    handler.mode = "nan"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "m.png")
    r = runner.invoke(app, ["score", str(tmp_path / "i.png"), str(tmp_path / "m.png"), "--reward", f"remote={url}",
                            "--json"], env={"COLUMNS": "2000"})
    assert r.exit_code == 1 and r.stdout == "" and "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "non-finite" in lines[0]
