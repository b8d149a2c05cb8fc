"""Best-of-N in the Inpainter: highest score wins, LCB trades score for trust, masked image encoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefpaint_sdk import Inpainter
from prefpaint_sdk.imaging import masked_image
from prefpaint_sdk.reward import RewardModel, RewardOutput
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, save_tiny_reward_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bon")
    return save_tiny_inpaint_pipeline(root / "pipe"), save_tiny_reward_model(root / "rm")


def _inputs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 20:44] = 255
    return image, mask


def test_best_of_n_picks_the_highest_reward(models, monkeypatch):
    pipe, rm_path = models
    inp = Inpainter.from_pretrained(pipe, device="cpu", reward_model=str(rm_path), offline=True)
    assert isinstance(inp.reward_model, RewardModel)
    encoded = []
    real = inp.reward_model.encode
    monkeypatch.setattr(inp.reward_model, "encode", lambda px: (encoded.append(px.shape[0]), real(px))[1])
    image, mask = _inputs()
    res = inp(image, mask, num_candidates=4, seed=1, steps=2, crop_margin=-1)
    assert sum(encoded) == 5  # 4 candidates + the shared masked image once
    assert res.scores is not None and len(res.scores) == 4 and len(res.bounds) == 4
    assert res.best_index == int(np.argmax(res.scores)) and res.image is res.candidates[res.best_index]
    from PIL import Image

    direct = inp.reward_model.score(res.candidates, masked_images=masked_image(Image.fromarray(image), mask > 0))
    np.testing.assert_allclose(res.scores, direct.scores.numpy(), atol=1e-5)
    assert res.to_dict()["scores"] == res.scores


class _StubReward:
    """Scores and bounds chosen so that the best score is the least trusted."""

    mask_fill = (0, 0, 0)

    def __init__(self, scores, bounds):
        self.scores, self.bounds, self.calls = scores, bounds, []

    def score(self, images, masked_images=None, **_):
        self.calls.append((len(images), masked_images))
        return RewardOutput(scores=torch.tensor(self.scores), embeddings=torch.zeros(len(images), 2),
                            bounds=torch.tensor(self.bounds, dtype=torch.float64), trust=None)


@pytest.fixture(scope="module")
def pipeline(models):
    return Inpainter.from_pretrained(models[0], device="cpu", offline=True).pipeline


def _bare_inpainter(pipeline, reward, select, lcb_c=1.0):
    return Inpainter(pipeline, reward_model=reward, select=select, lcb_c=lcb_c)


def test_lcb_picks_differ_from_reward_picks_when_bounds_differ(pipeline):
    from PIL import Image

    image, mask = _inputs()
    img, hole = Image.fromarray(image), mask > 0
    cands = [img.copy() for _ in range(3)]
    stub = _StubReward([1.0, 0.9, 0.2], [5.0, 0.1, 0.0])
    assert _bare_inpainter(pipeline, stub, "reward")._score(cands, img, hole)[-1] == 0
    assert _bare_inpainter(pipeline, stub, "lcb")._score(cands, img, hole)[-1] == 1
    assert _bare_inpainter(pipeline, stub, "lcb", lcb_c=0.0)._score(cands, img, hole)[-1] == 0
    n, masked = stub.calls[0]
    assert n == 3 and all(np.array_equal(np.asarray(m), np.asarray(masked_image(img, hole))) for m in masked)


def test_lcb_with_equal_bounds_equals_reward_selection(pipeline):
    from PIL import Image

    image, mask = _inputs()
    img, hole = Image.fromarray(image), mask > 0
    stub = _StubReward([0.1, 0.7, 0.3], [2.0, 2.0, 2.0])
    assert _bare_inpainter(pipeline, stub, "lcb")._score([img] * 3, img, hole)[-1] == 1
