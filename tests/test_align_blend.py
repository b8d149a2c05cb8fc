"""Mask-aware RL for the latent-blend families (qwen-image, flux2-klein): the shared rollout equals each
pipeline at noise level 0, its log-probabilities count the hole only and ``policy_step`` recomputes them,
``logprob_region`` resolves per family, and ``prefpaint train align`` runs, exports LoRA that each pipeline's
own ``load_lora_weights`` reads, and resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _helpers_align import make_data
from PIL import Image
from typer.testing import CliRunner

from prefpaint_sdk.engines import engine_for_pipeline
from prefpaint_sdk.errors import ConfigError
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline
from prefpaint_sdk.testing.blend_families import flux2_klein_pipeline, qwen_image_pipeline

BUILD = {"qwen-image": qwen_image_pipeline, "flux2-klein": flux2_klein_pipeline}
runner = CliRunner()


def _inputs(size=32):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    m = np.zeros((size, size), np.uint8)
    m[6:20, 10:28] = 255
    return img, Image.fromarray(m, "L")


@pytest.fixture(scope="module", params=sorted(BUILD))
def engine(request):
    return engine_for_pipeline(BUILD[request.param](0, {}))


@pytest.mark.parametrize("guided", [False, True])
def test_rollout_without_noise_is_the_pipeline(engine, guided):
    """Noise level 0: every step is the scheduler's, and the blend is the pipeline's (same generators)."""
    img, mask = _inputs()
    pipe, steps = engine.pipeline, 4
    qwen = engine.family == "qwen-image"
    guidance, neg = (3.0, "blurry") if guided else (1.0, "")
    kw = (dict(true_cfg_scale=guidance, negative_prompt=[neg] * 2) if guided else {}) if qwen else dict(guidance_scale=guidance)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    with torch.inference_mode():
        ref = pipe(prompt=["a cat"] * 2, image=[img] * 2, mask_image=[mask] * 2, height=32, width=32,
                   num_inference_steps=steps, strength=engine.default_strength, generator=gens, output_type="pt",
                   **kw).images.float()
    cond = engine.encode_conditions([img], [mask], 32, 32)
    pos, negative = engine.encode_prompts("a cat", neg, 2, guidance, "cpu")
    assert (negative is not None) == guided
    ro = engine.rollout(cond, [0, 0], [torch.Generator().manual_seed(s) for s in (1, 2)], num_steps=steps,
                        guidance_scale=guidance, prompt_embeds=pos, negative_embeds=negative, sde_noise=0.0)
    # Qwen-Image encodes per sample as its pipeline does: bit-equal; klein's pipeline encodes the batch at once
    assert (ro.images - ref).abs().max() <= (0 if qwen else 1e-5)
    assert ro.log_probs.shape == (2, 0)


def test_log_probs_count_the_hole_and_policy_step_recomputes_them(engine):
    img, mask = _inputs()
    cond = engine.encode_conditions([img], [mask], 32, 32)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
    ro = engine.rollout(cond, [0, 0, 0], gens, num_steps=4, sde_noise=0.7)
    n = len(engine.train_steps(4, 0, 0))  # the steps strength leaves (3 of 4 for qwen-image's 0.6)
    assert ro.log_probs.shape == (3, n) and ro.steps.tolist() == list(range(n))
    b = torch.arange(3)
    for k in range(n):
        out = engine.policy_step(engine.pipeline.transformer, ro, b, torch.full((3,), k), sde_noise=0.7)
        torch.testing.assert_close(out.log_prob, ro.log_probs[:, k], rtol=0, atol=1e-5)
    # the region is the blend mask (m > 0): a share of the latent like the hole's share of the image
    share = float(ro.region.mean())
    assert 0.15 < share < 0.45
    # what lies outside the region does not count: moving the stored action there changes nothing
    moved = ro.next_latents.clone()
    moved[:, 0] += 5.0 * (1 - ro.region)
    ro2 = type(ro)(**{**ro.__dict__, "next_latents": moved})
    out = engine.policy_step(engine.pipeline.transformer, ro2, b, torch.zeros(3, dtype=torch.long), sde_noise=0.7)
    torch.testing.assert_close(out.log_prob, ro.log_probs[:, 0], rtol=0, atol=1e-5)
    # and it equals Normal(mean, std).log_prob averaged over the region's elements
    x = ro.next_latents[:, 0]
    elem = torch.distributions.Normal(ro.means[:, 0], out.std).log_prob(x)
    want = (elem * ro.region).sum((1, 2)) / ro.region.expand_as(elem).sum((1, 2))
    torch.testing.assert_close(ro.log_probs[:, 0], want, rtol=0, atol=1e-5)


def test_logprob_region_per_family():
    from prefpaint_sdk.engines import engine_class

    for fam in ("qwen-image", "flux2-klein"):
        cls = engine_class(fam)
        assert cls.alignable and cls.default_algo == "grpo" and cls.check_logprob_region("auto") == "mask"
        with pytest.raises(ConfigError, match="logprob_region='full' does not apply to the .* family"):
            cls.check_logprob_region("full")
    for fam in ("sd", "sdxl", "flux-fill"):  # today's default kept, mask offered
        cls = engine_class(fam)
        assert cls.check_logprob_region("auto") == "full" and cls.check_logprob_region("mask") == "mask"
    assert not engine_class("z-image").alignable


@pytest.mark.parametrize("family", ["sd", "flux-fill"])
def test_fill_family_mask_region_keeps_the_samples_and_policy_step(family, tmp_path):
    """``logprob_region="mask"`` on a fill family: the same samples as "full" (only the log-probs differ), and
    ``policy_step`` recomputes the masked log-probs."""
    from prefpaint_sdk.engines import load_engine

    eng = load_engine(save_tiny_inpaint_pipeline(tmp_path / family, seed=1, family=family), device="cpu",
                      dtype="float32")
    img, mask = _inputs()
    cond = eng.encode_conditions([img], [mask], 32, 32)
    pos, neg = eng.encode_prompts("", "", 2, 1.0, "cpu", size=(32, 32))
    runs = {}
    for region in ("full", "mask"):
        gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
        runs[region] = eng.rollout(cond, [0, 0], gens, num_steps=2, eta=1.0, prompt_embeds=pos, negative_embeds=neg,
                                   sde_noise=0.7, window=None, logprob_region=region)
    full, masked = runs["full"], runs["mask"]
    assert torch.equal(full.images, masked.images) and full.region is None
    assert not torch.allclose(full.log_probs, masked.log_probs)
    b = torch.arange(2)
    ctx = eng.step_context(2, "cpu")
    for k in range(masked.log_probs.shape[1]):
        out = eng.policy_step(eng.model, masked, b, torch.full((2,), k), context=ctx, eta=1.0, sde_noise=0.7)
        torch.testing.assert_close(out.log_prob, masked.log_probs[:, k], rtol=0, atol=1e-5)


# --- the command line ------------------------------------------------------------------------------
def _app():
    from prefpaint_cli.main import app

    return app


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("blend_cli")
    return save_tiny_inpaint_pipeline(root / "qwen", seed=2, family="qwen-image"), make_data(root / "data", n=4)


def _args(model, data, out, algo, iterations):
    return ["train", "align", "--data", str(data), "--out", str(out), "--model", str(model), "--reward", "brightness",
            "--preset", "cpu-smoke", "--algo", algo, "--iterations", str(iterations), "--finetune", "lora",
            "--set", "num_steps=2", "--set", "timesteps_per_traj=2", "--set", "prompts_per_iter=2",
            "--set", "rollout_batch_size=8", "--set", "train_batch_size=8", "--set", "eval_every=0",
            "--set", "save_every=1", "--set", "log_with=none", "--offline"]


def _trained(out, it):
    from safetensors.torch import load_file

    return load_file(out / "checkpoints" / f"iter_{it:06d}" / "trainable.safetensors")


@pytest.mark.parametrize("algo", ["grpo", "nft"])
def test_train_align_on_qwen_image_exports_loads_and_resumes_exactly(qwen_dir, tmp_path, algo):
    from diffusers import QwenImageInpaintPipeline

    model, data = qwen_dir
    straight, split = tmp_path / "straight", tmp_path / "split"
    # LoRA's A matrices start from torch's global generator, as a fresh process has it: give both runs the same
    torch.manual_seed(0)
    r = runner.invoke(_app(), _args(model, data, straight, algo, 2))
    assert r.exit_code == 0, r.output
    assert f"algorithm: {algo}" in r.output and "done: 2 iterations" in r.output
    torch.manual_seed(0)
    r = runner.invoke(_app(), [*_args(model, data, split, algo, 1), "--no-export"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(_app(), [*_args(model, data, split, algo, 2), "--resume", "--no-export"])
    assert r.exit_code == 0 and "done: 2 iterations" in r.output, r.output
    a, b = _trained(straight, 2), _trained(split, 2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # exact resume
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_B" in k)  # it trained
    # the LoRA export loads with the pipeline's own load_lora_weights and gives the merged export's output
    pipe = QwenImageInpaintPipeline.from_pretrained(model)
    img, mask = _inputs()
    call = dict(prompt="", image=img, mask_image=mask, height=32, width=32, num_inference_steps=2, output_type="np")
    base = pipe(generator=torch.Generator().manual_seed(0), **call).images
    pipe.load_lora_weights(straight / "lora")
    lora = pipe(generator=torch.Generator().manual_seed(0), **call).images
    merged = QwenImageInpaintPipeline.from_pretrained(straight / "merged")(
        generator=torch.Generator().manual_seed(0), **call).images
    assert np.abs(lora - base).max() > 0 and np.abs(lora - merged).max() < 1e-4
    log = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    assert len([x for x in log if "reward_mean" in x]) == 2


def test_klein_lora_export_loads_with_its_pipeline(tmp_path):
    """FLUX.2 klein through the SDK: two GRPO iterations, then the LoRA (its single blocks' fused projections
    in and out included) loads with ``Flux2KleinInpaintPipeline.load_lora_weights`` and equals the merged export."""
    from _helpers_align import fast_config
    from diffusers import Flux2KleinInpaintPipeline

    from prefpaint_sdk.align import Aligner

    model = save_tiny_inpaint_pipeline(tmp_path / "klein", seed=2, family="flux2-klein")
    data = make_data(tmp_path / "data", n=4)
    cfg = fast_config(algo="grpo", num_steps=2, sde_window=0, rollout_batch_size=4)
    al = Aligner.from_pretrained(model, reward="brightness", config=cfg, data=data, output_dir=tmp_path / "run",
                                 device="cpu")
    al.train()
    out = al.export(tmp_path / "export")
    pipe = Flux2KleinInpaintPipeline.from_pretrained(model)
    img, mask = _inputs()
    call = dict(prompt="", image=img, mask_image=mask, num_inference_steps=2, output_type="np")
    pipe.load_lora_weights(out["lora"])
    names = [n for n, _ in pipe.transformer.named_parameters() if "lora" in n]
    assert any("to_qkv_mlp_proj" in n for n in names)
    # the single blocks' output projection too (diffusers' klein LoRA script's targets; issue 21, klein-learn)
    assert any("single_transformer_blocks.0.attn.to_out.lora" in n for n in names), names
    lora = pipe(generator=torch.Generator().manual_seed(0), **call).images
    merged = Flux2KleinInpaintPipeline.from_pretrained(out["merged"])(generator=torch.Generator().manual_seed(0),
                                                                      **call).images
    assert np.abs(lora - merged).max() < 1e-4


def test_full_region_on_a_blend_family_is_refused_before_loading(qwen_dir, tmp_path):
    model, data = qwen_dir
    r = runner.invoke(_app(), [*_args(model, data, tmp_path / "o", "grpo", 1), "--set", "logprob_region=full"])
    assert r.exit_code == 2, r.output
    assert "logprob_region='full' does not apply to the qwen-image family" in " ".join(r.output.split())
    assert not (tmp_path / "o").exists()


def test_forward_training_batch_from_latents_or_images(engine):
    """NFT trains on a rollout's own latents, DPO on rated images (encoded by the family's VAE): the same
    layout, the loss counting the blend mask, and the forward prediction's x0 equal to the target at no noise."""
    img, mask = _inputs()
    cond = engine.encode_conditions([img], [mask], 32, 32)
    ro = engine.rollout(cond, [0, 0], [torch.Generator().manual_seed(s) for s in (1, 2)], num_steps=4, sde_noise=0.0)
    text, _ = engine.encode_prompts("", "", 2, 1.0, "cpu")
    own = engine.clean_batch(cond, ro.groups, ro.images, text, num_steps=4, latents=ro.final_latents)
    rated = engine.clean_batch(cond, ro.groups, ro.images, text, num_steps=4)
    assert own.x0.shape == rated.x0.shape == ro.final_latents.shape
    assert torch.equal(own.loss_mask, ro.region) and own.kind == "flow"
    assert engine.clean_batch(cond, ro.groups, ro.images, text, num_steps=4, ring=None).loss_mask is None
    b = torch.arange(2)
    with torch.no_grad():
        out = engine.forward_predict(engine.pipeline.transformer, own, b, torch.zeros(2, dtype=torch.long),
                                     torch.zeros_like(own.x0))
    assert out.pred.shape == own.x0.shape
    torch.testing.assert_close(out.target, -own.x0)  # eps - x0 with eps = 0
