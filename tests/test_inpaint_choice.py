"""The SDK's candidate choice and trust (``InpaintResult.choose``/``trust``, ``choose_candidate``), and the server
using them without changing the caller's ``Inpainter`` (issue 23, structure)."""

from __future__ import annotations

import numpy as np
import pytest
from _serve_helpers import make_image, png, square_hole
from fastapi.testclient import TestClient

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.inpaint_result import choose_candidate


def test_choose_candidate_by_score_and_by_lower_confidence_bound():
    scores, bounds = [1.0, 0.9, 0.2], [5.0, 0.1, 0.0]
    assert choose_candidate(scores, bounds, "reward") == 0
    assert choose_candidate(scores, bounds, "lcb") == 1
    assert choose_candidate(scores, bounds, "lcb", lcb_c=0.0) == 0
    assert choose_candidate(scores, None, "lcb") == 0  # no bounds: by score
    with pytest.raises(InvalidInputError, match="select"):
        choose_candidate(scores, bounds, "best")


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    from prefpaint_sdk import RewardModel
    from prefpaint_sdk.testing import save_tiny_reward_model

    return RewardModel.from_pretrained(save_tiny_reward_model(tmp_path_factory.mktemp("rm") / "rm"), device="cpu")


def test_result_trust_is_the_reward_models_and_choose_matches_best_index(tiny_pipeline_dir, rm):
    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32", reward_model=rm, select="lcb")
    img, hole = make_image(), square_hole()
    res = inp(img, hole, num_candidates=3, seed=5, steps=2)
    import torch

    assert res.trust is not None and len(res.trust) == 3
    want = rm.trust.weight(bound=torch.tensor(res.bounds, dtype=torch.float64))
    assert np.allclose(res.trust, want.numpy(), rtol=1e-6)
    assert res.choose("lcb", inp.lcb_c) == res.best_index
    keys = np.asarray(res.scores) - np.asarray(res.bounds)
    assert res.best_index == int(np.argmax(keys))
    assert res.to_dict()["trust"] == res.trust


def test_with_reward_model_and_the_server_leave_the_callers_inpainter_alone(tiny_pipeline_dir, rm):
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32")
    other = inp.with_reward_model(rm)
    assert inp.reward_model is None and other.reward_model is rm and other.engine is inp.engine
    app = create_app(inp, rm, default_steps=1)
    assert inp.reward_model is None
    f = {"image": ("x.png", png(make_image()), "image/png"),
         "mask": ("m.png", png((square_hole() * 255).astype(np.uint8)), "image/png")}
    with TestClient(app) as c:
        r = c.post("/v1/inpaint", files=f, data={"n": "2", "seed": "3", "select": "lcb"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert inp.reward_model is None
    assert j["trust"] is not None and len(j["trust"]) == 2
    assert j["chosen"] == choose_candidate(j["scores"], j["bounds"], "lcb")


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux-fill"])
def test_previews_are_the_predicted_images_and_leave_the_candidates_unchanged(tiny_family_dir, family):
    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(tiny_family_dir(family), device="cpu", dtype="float32")
    img, hole = make_image(48, 64, 3), np.zeros((48, 64), bool)
    hole[16:32, 16:40] = True
    # strength 1: all 6 steps denoise (SDXL's native default 0.9999 would run 5)
    plain = inp(img, hole, seed=11, steps=6, num_candidates=2, strength=1.0)
    got = []
    shown = inp(img, hole, seed=11, steps=6, num_candidates=2, strength=1.0, previews=3,
                on_preview=lambda k, step, ims: got.append((k, step, ims)))
    assert [(k, s) for k, s, _ in got] == [(0, 2), (1, 3), (2, 4)]  # evenly spaced over 6 steps, not the last
    for a, b in zip(plain.candidates, shown.candidates):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    far = np.ones_like(hole)
    far[4:44, 4:52] = False
    for _, _, ims in got:
        assert len(ims) == 2 and ims[0].size == (64, 48)
        assert np.array_equal(np.asarray(ims[0])[far], img[far])  # composited as the final image is
    assert not np.array_equal(np.asarray(got[0][2][0]), np.asarray(shown.candidates[0]))
