"""RewardModel: save/load, batching, shared masked-image encoding, preprocessing equivalence, grad path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk.errors import InvalidInputError
from prefpaint_sdk.imaging import masked_image
from prefpaint_sdk.reward import RewardModel, RewardOutput
from prefpaint_sdk.reward.preprocess import preprocess_images, preprocess_tensor
from prefpaint_sdk.testing import save_tiny_reward_model, tiny_reward_model


@pytest.fixture(scope="module")
def tiny():
    return tiny_reward_model(seed=0)


def _rand_images(n, w=48, h=40, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(n)]


def _hole(w=48, h=40):
    m = np.zeros((h, w), bool)
    m[10:30, 12:36] = True
    return m


def test_save_load_round_trip(tmp_path, tiny):
    path = save_tiny_reward_model(tmp_path / "rm", seed=0)
    assert {"config.json", "model.safetensors", "trust.safetensors"} <= {p.name for p in path.iterdir()}
    loaded = RewardModel.from_pretrained(path, device="cpu")
    imgs = _rand_images(3)
    a, b = tiny.score(imgs, masks=_hole()), loaded.score(imgs, masks=_hole())
    assert torch.equal(a.scores, b.scores)
    torch.testing.assert_close(a.bounds, b.bounds, rtol=1e-9, atol=0)
    for (k, v), (k2, v2) in zip(tiny.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert loaded.model_id == str(path) and loaded.trust.count == 8


def test_load_rejects_a_folder_that_is_not_a_reward_model(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(InvalidInputError, match="not a PrefPaint reward model"):
        RewardModel.from_pretrained(tmp_path / "x", device="cpu")


def test_batched_scores_equal_per_image_scores(tiny):
    imgs, masked = _rand_images(5, seed=1), _rand_images(5, seed=2)
    batched = tiny.score(imgs, masked_images=masked, batch_size=2)
    single = [tiny.score(i, masked_images=m).scores.item() for i, m in zip(imgs, masked)]
    torch.testing.assert_close(batched.scores, torch.tensor(single), atol=1e-5, rtol=0)
    assert batched.scores.shape == (5,) and batched.embeddings.shape == (5, 16) and batched.bounds.shape == (5,)


def test_masked_image_is_derived_from_image_and_mask(tiny):
    imgs, hole = _rand_images(2, seed=3), _hole()
    derived = tiny.score(imgs, masks=hole)
    explicit = tiny.score(imgs, masked_images=[masked_image(im, hole) for im in imgs])
    assert torch.equal(derived.scores, explicit.scores)
    grey = tiny.score(imgs, masks=hole, mask_fill=(128, 128, 128))
    assert not torch.equal(derived.scores, grey.scores)


def test_shared_masked_image_is_encoded_once(tiny, monkeypatch):
    cands, masked = _rand_images(4, seed=4), _rand_images(1, seed=5)[0]
    seen = []
    real = tiny.encode
    monkeypatch.setattr(tiny, "encode", lambda px: (seen.append(px.shape[0]), real(px))[1])
    shared = tiny.score(cands, masked_images=masked)
    assert sum(seen) == 5  # N + 1 images through the backbone, not 2N
    seen.clear()
    copies = tiny.score(cands, masked_images=[masked.copy() for _ in cands])  # equal pixels, distinct objects
    assert sum(seen) == 5 and torch.equal(shared.scores, copies.scores)
    monkeypatch.undo()
    loop = torch.stack([tiny.score(c, masked_images=masked).scores[0] for c in cands])
    torch.testing.assert_close(shared.scores, loop, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(48, 40), (37, 61), (224, 224), (300, 171), (33, 33)])
def test_preprocessing_equals_transformers_clip_image_processor(size):
    from transformers import CLIPImageProcessorPil

    img = _rand_images(1, *size, seed=6)[0]
    for crop in (224, 32):
        proc = CLIPImageProcessorPil(size={"shortest_edge": crop}, crop_size={"height": crop, "width": crop})
        ref = proc(images=[img], return_tensors="pt")["pixel_values"]
        ours = preprocess_images([img], crop)
        assert ours.shape == ref.shape == (1, 3, crop, crop)
        torch.testing.assert_close(ours, ref.float(), atol=1e-6, rtol=0)


def test_default_processor_settings_are_openai_clip():
    from transformers import CLIPImageProcessorPil

    from prefpaint_sdk.reward.preprocess import CLIP_MEAN, CLIP_STD

    p = CLIPImageProcessorPil()
    assert tuple(p.image_mean) == CLIP_MEAN and tuple(p.image_std) == CLIP_STD
    assert p.size["shortest_edge"] == 224 and int(p.resample) == int(Image.BICUBIC)


def test_tensor_preprocessing_is_close_to_pil_and_differentiable():
    img = _rand_images(1, 96, 80, seed=7)[0]
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div(255).requires_grad_(True)
    t = preprocess_tensor(x, 32)
    p = preprocess_images([img], 32)
    assert (t - p).abs().mean() < 0.05
    t.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_grad_path_gives_gradients_and_matches_no_grad_scores(tiny):
    x = torch.rand(2, 3, 32, 32)  # already at the backbone's size: no resize, so both paths see equal pixels
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 8:24, 8:24] = 1
    out = tiny.score(x, masks=hole, grad=True)
    out.scores.sum().backward()
    assert tiny.last_layer.weight.grad is not None
    tiny.zero_grad()
    pil = [Image.fromarray((xi.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for xi in x]
    ref = tiny.score(pil, masks=hole[0, 0].numpy() > 0.5)
    torch.testing.assert_close(out.scores.detach(), ref.scores, atol=2e-2, rtol=0)


def test_reward_output_records_lcb_and_normalisation(tiny):
    imgs = _rand_images(3, seed=8)
    out = tiny.score(imgs, masks=_hole())
    recs = out.to_records()
    assert set(recs[0]) == {"score", "bound", "trust"} and len(recs) == 3
    torch.testing.assert_close(out.lcb(2.0), out.scores.double() - 2.0 * out.bounds)
    norm = tiny.score(imgs, masks=_hole(), normalize=True)
    torch.testing.assert_close(norm.scores, (out.scores - 0.4064) / 2.3021)
    bare = RewardOutput(scores=torch.ones(2), embeddings=torch.zeros(2, 3))
    assert bare.to_records()[0]["bound"] is None and torch.equal(bare.lcb(), torch.ones(2, dtype=torch.float64))


def test_score_input_errors(tiny):
    imgs = _rand_images(3)
    with pytest.raises(InvalidInputError, match="masks= or masked_images="):
        tiny.score(imgs)
    with pytest.raises(InvalidInputError, match="2 masked_images for 3 images"):
        tiny.score(imgs, masked_images=imgs[:2])
    with pytest.raises(InvalidInputError, match="mask is 10x10 but image is 48x40"):
        tiny.score(imgs, masks=np.zeros((10, 10), bool))
    with pytest.raises(InvalidInputError, match="batch_size"):
        tiny.score(imgs, masks=_hole(), batch_size=0)


def test_freeze_backbone_freezes_the_first_layers_only():
    m = tiny_reward_model(seed=1, trust=False)
    assert m.freeze_backbone(0.5) == 1
    vm = m.backbone.vision_model
    assert not any(p.requires_grad for p in vm.encoder.layers[0].parameters())
    assert not vm.embeddings.patch_embedding.weight.requires_grad
    assert all(p.requires_grad for p in vm.encoder.layers[1].parameters())
    assert m.last_layer.weight.requires_grad and m.fusion.linear1.weight.requires_grad
    with pytest.raises(InvalidInputError, match="fraction"):
        m.freeze_backbone(1.5)


def test_real_size_config_builds_vit_b32_shapes():
    from prefpaint_sdk.reward import VIT_B32_CONFIG

    assert VIT_B32_CONFIG["hidden_size"] == 768 and VIT_B32_CONFIG["patch_size"] == 32
    assert VIT_B32_CONFIG["hidden_act"] == "quick_gelu" and VIT_B32_CONFIG["projection_dim"] == 512


def test_score_runs_in_eval_mode_and_restores_the_mode():
    m = tiny_reward_model(seed=2, trust=False)
    imgs = _rand_images(2, seed=9)
    ref = m.score(imgs, masks=_hole()).scores
    m.train()
    again = m.score(imgs, masks=_hole()).scores  # dropout would change these
    assert torch.equal(ref, again) and m.training
