"""Aligner: trainable parameters, paste-back, rewards and trust, resume, Ctrl-C, export."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
from _helpers_align import fast_config, make_data

from prefpaint_sdk.align.rewards import as_reward_fn
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.reward.constraints import brightness_in_mask
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, tiny_inpaint_pipeline


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("align_data"), n=6)


def _aligner(data, out, reward="brightness", pipe_seed=0, **cfg):
    return Aligner(tiny_inpaint_pipeline(pipe_seed), reward, fast_config(**cfg), data, out, device="cpu")


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_lora_changes_only_adapter_parameters(data, tmp_path):
    al = _aligner(data, tmp_path, iterations=1)
    unet0, vae0, te0 = _snapshot(al.pipe.unet), _snapshot(al.pipe.vae), _snapshot(al.pipe.text_encoder)
    al.train()
    unet1 = _snapshot(al.pipe.unet)
    changed = {k for k in unet0 if not torch.equal(unet0[k], unet1[k])}
    lora_b = {k for k in unet0 if "lora_B" in k}
    assert changed and all("lora_" in k for k in changed)
    assert changed & lora_b  # B starts at zero; training moved it
    assert all(torch.equal(v, al.pipe.vae.state_dict()[k]) for k, v in vae0.items())
    assert all(torch.equal(v, al.pipe.text_encoder.state_dict()[k]) for k, v in te0.items())


def test_full_finetune_changes_unet_only(data, tmp_path):
    al = _aligner(data, tmp_path, iterations=1, finetune="full", learning_rate=1e-4)
    unet0, vae0 = _snapshot(al.pipe.unet), _snapshot(al.pipe.vae)
    al.train()
    unet1 = al.pipe.unet.state_dict()
    assert sum(not torch.equal(unet0[k], unet1[k]) for k in unet0) > len(unet0) // 2
    assert all(torch.equal(v, al.pipe.vae.state_dict()[k]) for k, v in vae0.items())


def test_known_pixels_are_pasted_back_exactly(data, tmp_path):
    al = _aligner(data, tmp_path)
    items = [item for item, _ in al._items_for_iteration(0)]
    ro, images, masks = al._sample(items, [1, 2, 3, 4], 2)
    for i, g in enumerate(ro.groups.tolist()):
        init = torch.from_numpy(np.asarray(items[g].image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        keep = ~masks[i, 0]
        assert keep.any() and masks[i, 0].any()
        assert torch.allclose(images[i][:, keep], init[:, keep], atol=1e-6)  # preprocess is x/127.5-1, undone
        assert not torch.allclose(images[i][:, ~keep], init[:, ~keep], atol=1e-2)


def test_brightness_reward_and_nan_for_empty_holes():
    img = torch.zeros(2, 3, 4, 4)
    img[:, :, :2] = 1.0
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2] = True
    r = brightness_in_mask(img, masks)
    assert r[0].item() == pytest.approx(1.0) and torch.isnan(r[1])


def test_reward_adapters_callable_bounds_and_model_trust():
    imgs, masks = torch.rand(3, 3, 8, 8), torch.ones(3, 8, 8, dtype=torch.bool)

    def fn(images, masks, masked):
        return [1.0, 2.0, 3.0], np.array([0.0, 10.0, 100.0])

    rb = as_reward_fn(fn)(imgs, masks, imgs)
    assert rb.scores.tolist() == [1.0, 2.0, 3.0]
    assert rb.trust[0].item() == pytest.approx(np.exp(0.7)) and rb.trust[2].item() == 1.0

    class Out:
        scores = torch.tensor([0.5, 0.1, 0.2])
        bounds = torch.tensor([1.0, 2.0, 3.0])
        trust = torch.tensor([1.9, 1.1, 1.5])

    class FakeRewardModel:
        def __init__(self):
            self.calls = []

        def score(self, images, masks=None, masked_images=None, batch_size=16):
            self.calls.append((len(images), images[0].size, masked_images[0].mode, masks))
            return Out()

    fake = FakeRewardModel()
    rb = as_reward_fn(fake)(imgs, masks, imgs)
    assert fake.calls == [(3, (8, 8), "RGB", None)]  # the hole is framed into masked_images (reward.framing)
    assert torch.equal(rb.trust, Out.trust) and torch.equal(rb.scores, Out.scores)
    with pytest.raises(Exception, match="returned 2 scores for 3 images"):
        as_reward_fn(lambda *a: [1.0, 2.0])(imgs, masks, imgs)
    with pytest.raises(Exception, match="unknown built-in reward 'shiny'"):
        as_reward_fn("shiny")


def test_trust_weights_reach_the_loss(data, tmp_path):
    # A reward that returns bounds: gamma is used (on by default) and logged; off gives exactly 1.
    def reward(images, masks, masked):
        s = brightness_in_mask(images, masks)
        return s, torch.full_like(s, 4.0)

    on = _aligner(data, tmp_path / "on", reward=reward).step()
    off = _aligner(data, tmp_path / "off", reward=reward, use_trust=False).step()
    assert on["trust_mean"] == pytest.approx(np.exp(-0.05 * 4 + 0.7), rel=1e-6)
    assert off["trust_mean"] == 1.0
    # same rollouts and advantages, loss scaled exactly by gamma on the first micro-batch (ratio 1)
    assert on["loss"] == pytest.approx(off["loss"] * np.exp(0.5), rel=0.05)


def test_nan_rewards_are_dropped(data, tmp_path):
    def reward(images, masks, masked):
        s = brightness_in_mask(images, masks)
        s[0] = float("nan")
        return s

    m = _aligner(data, tmp_path, reward=reward).step()
    assert m["reward_nan"] == 1.0 and np.isfinite(m["loss"]) and np.isfinite(m["reward_mean"])


def test_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(iterations=3, resync_every=2, save_every=1)
    full = _aligner(data, tmp_path / "full", **kw)
    full.train()
    part = _aligner(data, tmp_path / "part", **{**kw, "iterations": 2})
    part.train()
    resumed = _aligner(data, tmp_path / "part", **kw)
    resumed.train(resume=True)
    assert resumed.iteration == 3
    for n, p in full.params.items():
        assert torch.allclose(p, resumed.params[n], atol=1e-6), n
    for n, t in full.old.tensors.items():
        assert torch.allclose(t, resumed.old.tensors[n], atol=1e-6), n
    # the checkpoint holds no pickle: only safetensors and JSON
    ck = sorted((tmp_path / "part" / "checkpoints").glob("iter_*"))[-1]
    assert {p.suffix for p in ck.iterdir()} == {".safetensors", ".json"}


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(data, tmp_path):
    al = _aligner(data, tmp_path, iterations=3)
    al.progress = lambda it, total, m: signal.raise_signal(signal.SIGINT) if it == 1 else None  # a real Ctrl-C
    res = al.train()
    assert res.interrupted and res.iterations_done == 1
    assert (tmp_path / "checkpoints" / "iter_000001" / "trainable.safetensors").is_file()
    again = _aligner(data, tmp_path, iterations=3)
    assert again.train(resume=True).iterations_done == 3


def test_eval_logs_win_rate_and_grid(data, tmp_path):
    al = _aligner(data, tmp_path, iterations=1, eval_every=1, eval_size=2, eval_samples=2)
    seen = []
    evaluate = al.evaluate
    al.evaluate = lambda tag=None: seen.append(evaluate(tag)) or seen[-1]
    res = al.train()
    assert [e["iteration"] for e in res.evals] == [0, 1]
    # The WinRate against the start, recomputed by hand from both evaluations' rewards: a tie is half a win.
    start, end = seen[0].rewards, seen[1].rewards
    assert len(start) == len(end) == 4 and start != end
    wins = sum(1.0 if e > s else 0.5 if e == s else 0.0 for s, e in zip(start, end))
    assert res.evals[1]["win_rate"] == pytest.approx(wins / 4)
    assert (tmp_path / "eval" / "iter_000001.png").is_file()
    assert "eval/mean_reward" in (tmp_path / "log.jsonl").read_text()


def test_export_lora_loads_in_diffusers_and_merged_in_inpainter(data, tmp_path):
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    from prefpaint_sdk import Inpainter

    base_dir = save_tiny_inpaint_pipeline(tmp_path / "base", seed=0)
    al = Aligner.from_pretrained(base_dir, "brightness", fast_config(iterations=1, learning_rate=5e-2), data,
                                 tmp_path / "run", device="cpu")
    al.train()
    lora_dir = al.export_lora(tmp_path / "lora")
    merged_dir = al.export_merged(tmp_path / "merged")

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True

    def run(pipe):
        pipe.set_progress_bar_config(disable=True)
        with torch.inference_mode():
            return pipe(prompt="", image=img, mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
                        height=64, width=64, num_inference_steps=3, guidance_scale=1.0, eta=1.0,
                        generator=torch.Generator().manual_seed(0), output_type="np").images[0]

    fresh = StableDiffusionInpaintPipeline.from_pretrained(base_dir, safety_checker=None, requires_safety_checker=False)
    before = run(fresh)
    fresh.load_lora_weights(lora_dir)
    with_lora = run(fresh)
    assert np.abs(with_lora - before).max() > 1e-3  # the adapter changes the output

    inp = Inpainter.from_pretrained(merged_dir, device="cpu", dtype="float32")
    merged_out = run(inp.pipeline)
    assert np.allclose(merged_out, with_lora, atol=2e-3)  # fused weights = base + adapter
    res = inp(img, mask, seed=0, steps=2, mask_blur=0)
    assert res.image.size == (64, 64)


def test_real_tiny_reward_model_drives_alignment_with_its_trust(data, tmp_path):
    from prefpaint_sdk.reward.base import to_pil as _to_pil
    from prefpaint_sdk.testing import save_tiny_reward_model

    reward_dir = save_tiny_reward_model(tmp_path / "reward", seed=0, trust=True)
    base_dir = save_tiny_inpaint_pipeline(tmp_path / "base", seed=0)
    al = Aligner.from_pretrained(base_dir, reward_dir, fast_config(iterations=1), data, tmp_path / "run",
                                 device="cpu", offline=True)
    items = [item for item, _ in al._items_for_iteration(0)]
    _, images, masks = al._sample(items, [1, 2, 3, 4], 2)
    rb = al._score(images, masks)
    from prefpaint_sdk.reward import RewardModel

    model = RewardModel.from_pretrained(reward_dir, device="cpu")  # the weights the aligner loaded
    masked = images * (~masks).float()
    ref = model.score(_to_pil(images), masked_images=_to_pil(masked))
    assert torch.allclose(rb.scores, torch.as_tensor(ref.scores, dtype=torch.float32), atol=1e-5)
    assert ref.trust is not None and torch.allclose(rb.trust, torch.as_tensor(ref.trust, dtype=torch.float32))
    m = al.step()
    assert m["trust_mean"] == pytest.approx(float(torch.as_tensor(rb.trust).mean()), rel=0.2)
    assert np.isfinite(m["loss"])


def test_gradient_checkpointing_gives_the_same_update(data, tmp_path):
    a = _aligner(data, tmp_path / "a", iterations=1)
    b = _aligner(data, tmp_path / "b", iterations=1, gradient_checkpointing=True)
    a.step()
    b.step()
    for n, p in a.params.items():
        assert torch.allclose(p, b.params[n], atol=1e-6), n


def test_bf16_mixed_precision_runs(data, tmp_path):
    from accelerate.state import AcceleratorState

    # accelerate keeps one process-wide state; reset it so this test may pick another precision
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        al = _aligner(data, tmp_path, iterations=1, mixed_precision="bf16")
        assert al.pipe.vae.dtype == torch.bfloat16
        assert all(p.dtype == torch.float32 for p in al.params.values())  # adapters train in fp32
        m = al.step()
        assert np.isfinite(m["loss"]) and np.isfinite(m["reward_mean"])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
