"""Best-of-N by a reward stack: ``Inpainter(reward=...)`` and ``prefpaint inpaint -n N --reward ...``.

The pick equals a hand computation from every reward's own scores (gdpo over the N candidates); a stack of only
``prefpaint`` keeps the PrefPaint LCB rule; a remote judge answering NaN stops the call in one line.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk import Inpainter
from prefpaint_sdk.errors import RemoteRewardError
from prefpaint_sdk.inpaint_result import choose_candidate
from prefpaint_sdk.reward import RewardOutput, RewardStack

runner = CliRunner()


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("bon-stack") / "rm")


def _inputs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 20:44] = 255
    return image, mask


def _gdpo(rows, weights):
    """GDPO over one group, written out: standardise each reward, weighted sum, whiten."""
    z = [(r - r.mean()) / r.std() for r in (np.asarray(x, dtype=np.float64) for x in rows)]
    a = sum(w * zi for w, zi in zip(weights, z))
    return (a - a.mean()) / a.std()


def test_a_stack_picks_by_its_normalised_combination(tiny_pipeline_dir, rm_dir):
    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", reward=[f"prefpaint={rm_dir}", "seam", "brightness"],
                                    reward_weights=[1, 0.5, 2], offline=True)
    image, mask = _inputs()
    res = inp(image, mask, num_candidates=4, seed=3, steps=2, crop_margin=-1)
    assert list(res.rewards) == ["prefpaint", "seam", "brightness"]
    rows = [res.rewards[k]["scores"] for k in res.rewards]
    key = _gdpo(rows, [1, 0.5, 2])
    np.testing.assert_allclose(res.scores, key, atol=1e-9)
    assert res.best_index == int(np.argmax(key)) and res.image is res.candidates[res.best_index]
    assert res.choose() == res.best_index
    # each reward's scores are that reward's own, computed directly on the candidates
    from prefpaint_sdk.reward.constraints import brightness_in_mask

    t = torch.stack([torch.from_numpy(np.asarray(c, np.float32) / 255).permute(2, 0, 1) for c in res.candidates])
    holes = torch.from_numpy(mask > 0)[None].expand(4, -1, -1)
    np.testing.assert_allclose(res.rewards["brightness"]["scores"], brightness_in_mask(t, holes).numpy(), atol=1e-6)
    assert res.rewards["prefpaint"]["bounds"] is not None and res.rewards["seam"]["bounds"] is None
    facts = res.to_dict()
    assert facts["rewards"] == res.rewards and facts["params"]["reward_stack"] == dict(
        labels=["prefpaint", "seam", "brightness"], weights=[1.0, 0.5, 2.0], norm="gdpo")
    json.dumps(facts, allow_nan=False)  # the sidecar is strict JSON


def test_a_prefpaint_only_stack_equals_the_reward_model(tiny_pipeline_dir, rm_dir):
    image, mask = _inputs()
    plain = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", reward_model=str(rm_dir), offline=True)
    stacked = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", reward=f"prefpaint={rm_dir}", offline=True)
    a = plain(image, mask, num_candidates=3, seed=1, steps=2, crop_margin=-1)
    b = stacked(image, mask, num_candidates=3, seed=1, steps=2, crop_margin=-1)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    np.testing.assert_allclose(a.bounds, b.bounds, rtol=1e-5)
    assert a.best_index == b.best_index


class _Stub:
    """Scores and bounds where the best score is the least trusted."""

    mask_fill = (0, 0, 0)

    def score(self, images, masked_images=None, **_):
        return RewardOutput(scores=torch.tensor([1.0, 0.9, 0.5]), embeddings=torch.zeros(3, 2),
                            bounds=torch.tensor([2.0, 0.1, 0.1]), trust=None)


def test_lcb_still_applies_to_a_prefpaint_only_stack(tiny_inpainter):
    image, mask = _inputs()
    for select, want in (("reward", 0), ("lcb", 1)):
        inp = tiny_inpainter.with_reward_model(RewardStack([_Stub()], labels=["prefpaint"]))
        inp.select = select
        res = inp(image, mask, num_candidates=3, seed=0, steps=1, crop_margin=-1)
        assert res.best_index == want == choose_candidate([1.0, 0.9, 0.5], [2.0, 0.1, 0.1], select)
        assert res.choose("lcb") == 1 and res.choose("reward") == 0


def test_unscorable_candidates_are_never_picked():
    assert choose_candidate([None, 0.2, float("nan"), 0.1]) == 1
    rewards = {"a": {"scores": [3.0, None, 1.0], "bounds": None}, "b": {"scores": [0.0, 5.0, 1.0], "bounds": None}}
    assert choose_candidate(None, rewards=rewards, weights=(1, 1)) in (0, 2)
    with pytest.raises(Exception, match="finite score under every reward"):
        choose_candidate(None, rewards={"seam": {"scores": [None, None], "bounds": None}})


class _NaNJudge(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"score": NaN}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def nan_judge():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NaNJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_remote_judge_answering_nan_stops_best_of_n(tiny_pipeline_dir, nan_judge, tmp_path):
    image, mask = _inputs()
    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", reward=[f"remote={nan_judge}", "seam"], offline=True)
    with pytest.raises(RemoteRewardError, match="non-finite"):
        inp(image, mask, num_candidates=2, seed=0, steps=1, crop_margin=-1)
    Image.fromarray(image).save(tmp_path / "im.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "out.png"
    r = runner.invoke(app, ["inpaint", str(tmp_path / "im.png"), str(tmp_path / "m.png"), "-o", str(out), "-n", "2",
                            "--steps", "1", "--model", str(tiny_pipeline_dir), "--device", "cpu", "--offline", "-q",
                            "--reward", f"remote={nan_judge}", "--reward", "seam"])
    assert r.exit_code == 1, r.output
    assert "non-finite" in r.output and "Traceback" not in r.output
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_inpaint_cli_writes_every_rewards_scores(tiny_pipeline_dir, rm_dir, tmp_path):
    image, mask = _inputs()
    Image.fromarray(image).save(tmp_path / "im.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "out.png"
    r = runner.invoke(app, ["inpaint", str(tmp_path / "im.png"), str(tmp_path / "m.png"), "-o", str(out), "-n", "3",
                            "--steps", "2", "--seed", "5", "--model", str(tiny_pipeline_dir), "--device", "cpu",
                            "--offline", "--reward", f"prefpaint={rm_dir}", "--reward", "seam", "--reward", "outside-change",
                            "--reward-weights", "1,1,0.5", "--reward-norm", "rank", "--select", "lcb"])
    assert r.exit_code == 0, r.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert list(side["rewards"]) == ["prefpaint", "seam", "outside-change"]
    assert side["params"]["reward_stack"]["norm"] == "rank"
    # composited candidates leave the original exact beyond the feather band: outside-change is 0 for each
    assert side["rewards"]["outside-change"]["scores"] == [0.0, 0.0, 0.0]
    assert side["rewards"]["prefpaint"]["bounds"] is not None  # so lcb ranks prefpaint by score - bound
    want = choose_candidate(None, select="lcb", rewards=side["rewards"], weights=(1, 1, 0.5), norm="rank")
    assert side["best_index"] == want
    assert "prefpaint" in r.output and "seam" in r.output


@pytest.mark.parametrize("kw, err, pattern", [
    (dict(reward=["seam"], reward_weights=[1, 2]), "ConfigError", "2 weights for 1 rewards"),
    (dict(reward=["nope=x"]), "ConfigError", "unknown reward 'nope'"),
    (dict(reward=["hpsv2"]), "ConfigError", "hpsv2=FOLDER"),
    (dict(reward=["seam", "imagereward=THUDM/ImageReward"]), "ModelNotFoundError", "does not exist"),
    (dict(reward=["seam"], reward_norm="mean"), "ConfigError", "reward_norm must be one of"),
    (dict(reward=["seam"], reward_model=_Stub()), "InvalidInputError", "joins a reward stack by its id"),
])
def test_a_bad_stack_is_refused_before_the_pipeline_loads(tmp_path, kw, err, pattern):
    import prefpaint_sdk.errors as errors

    # the model folder does not exist: a stack check that came after the pipeline's would name the folder instead
    with pytest.raises(getattr(errors, err), match=pattern):
        Inpainter.from_pretrained(tmp_path / "no-such-model", device="cpu", offline=True, **kw)
