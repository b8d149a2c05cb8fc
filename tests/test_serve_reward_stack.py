"""``prefpaint serve --reward ...``: one reward stack scores every served model's candidates (so their scores are
comparable) and ``/v1/score`` answers each reward, in the score protocol that ``remote=`` speaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _serve_helpers import live_server, make_image, png, square_hole
from fastapi.testclient import TestClient

from prefpaint_sdk import Inpainter, RewardModel
from prefpaint_sdk.reward import RewardStack
from prefpaint_sdk.reward.remote import RemoteReward

WEIGHTS = (1.0, 0.5)


@pytest.fixture(scope="module")
def setup(tiny_pipeline_dir, tmp_path_factory):
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk.testing import save_tiny_reward_model

    rm = RewardModel.from_pretrained(save_tiny_reward_model(tmp_path_factory.mktemp("serve-stack") / "rm"), device="cpu")
    stack = RewardStack([rm, "seam"], labels=["prefpaint", "seam"], weights=WEIGHTS)
    models = {name: Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32") for name in ("a", "b")}
    app = create_app(models, stack, default_steps=2)
    return app, models, stack


@pytest.fixture(scope="module")
def client(setup):
    with TestClient(setup[0]) as c:
        yield c


def _files(image, hole):
    return {"image": ("i.png", png(image), "image/png"), "mask": ("m.png", png(np.where(hole, 255, 0).astype(np.uint8)), "image/png")}


def test_every_model_is_scored_by_the_one_stack(client, setup):
    _, models, stack = setup
    image, hole = make_image(), square_hole()
    for name, inp in models.items():
        assert inp.reward_model is None  # the caller's inpainters are not changed
        ans = client.post("/v1/inpaint", files=_files(image, hole), data={"n": "3", "seed": "4", "steps": "2", "model": name})
        assert ans.status_code == 200, ans.text
        body = ans.json()
        direct = inp.with_reward_model(stack)(image, hole, num_candidates=3, seed=4, steps=2)
        assert list(body["rewards"]) == ["prefpaint", "seam"]
        for label in body["rewards"]:
            np.testing.assert_allclose(body["rewards"][label]["scores"], direct.rewards[label]["scores"], atol=1e-5)
        np.testing.assert_allclose(body["scores"], direct.scores, atol=1e-5)
        assert body["best_index"] == direct.best_index
        assert body["model"]["reward_model"] == {"rewards": ["prefpaint", "seam"], "weights": list(WEIGHTS), "norm": "gdpo"}


def test_score_answers_each_reward(client, setup):
    stack = setup[2]
    image, hole = make_image(seed=2), square_hole()
    ans = client.post("/v1/score", files=_files(image, hole))
    assert ans.status_code == 200, ans.text
    body = ans.json()
    direct = stack.score_image(image, hole)
    assert set(body["rewards"]) == {"prefpaint", "seam"}
    for label, rec in body["rewards"].items():
        assert rec["score"] == pytest.approx(direct["rewards"][label]["score"], abs=1e-6)
    want = WEIGHTS[0] * body["rewards"]["prefpaint"]["score"] + WEIGHTS[1] * body["rewards"]["seam"]["score"]
    assert body["score"] == pytest.approx(want, abs=1e-9)
    # the answer is one the remote client accepts: exactly one finite score
    assert RemoteReward("http://127.0.0.1:9")._check(0, ans.content)[0] == pytest.approx(want)
    # a stack scores the hole: a masked image alone is refused, and so is the PrefPaint model's release scale
    only_masked = {"image": ("i.png", png(image), "image/png"), "masked_image": ("k.png", png(image), "image/png")}
    assert client.post("/v1/score", files=only_masked).status_code == 422
    r = client.post("/v1/score", files=_files(image, hole), data={"normalize": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "normalize"


def test_remote_reward_over_a_served_stack_equals_the_local_stack(setup):
    app, _, stack = setup
    image = torch.from_numpy(np.stack([make_image(seed=s) for s in range(3)]).astype(np.float32) / 255).permute(0, 3, 1, 2)
    holes = torch.from_numpy(square_hole())[None].expand(3, -1, -1)
    masked = image * ~holes[:, None]
    with live_server(app) as url:
        remote = RemoteReward(url)(image, holes, masked).scores
    local = stack.score(image, holes, masked)
    want = WEIGHTS[0] * local["prefpaint"].scores + WEIGHTS[1] * local["seam"].scores
    np.testing.assert_allclose(remote.numpy(), want.numpy(), atol=1e-5)


def test_edits_items_carry_each_rewards_score(client):
    image, hole = make_image(seed=5), square_hole()
    rgba = png(np.dstack([image, np.where(hole, 0, 255).astype(np.uint8)]))
    r = client.post("/v1/images/edits", files={"image": ("i.png", png(image), "image/png"), "mask": ("m.png", rgba, "image/png")},
                    data={"n": "2", "model": "b", "seed": "9"})
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert [set(it["rewards"]) for it in items] == [{"prefpaint", "seam"}] * 2
    assert all(isinstance(v, float) for it in items for v in it["rewards"].values())
    assert sum(it["chosen"] for it in items) == 1
