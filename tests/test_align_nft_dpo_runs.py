"""DiffusionNFT and Diffusion-DPO over the shared loop: short runs on the tiny fixtures change the trained
weights and nothing frozen, name their algorithm in the run record, resume exactly, and export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _helpers_align import FAST, make_data
from _helpers_pairs import write_rated
from PIL import Image

from prefpaint_sdk.align.config import AlignConfig
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.errors import ConfigError, DataError
from prefpaint_sdk.testing import tiny_inpaint_pipeline

# the shared values of the fast config (the PPO-only ones left out: each algorithm refuses another's settings)
SHARED = {k: v for k, v in FAST.items() if k not in ("clip_range", "resync_every", "timesteps_per_traj")}


def _aligner(family, algo, data, out, **kw):
    cfg = AlignConfig().replace(**{**SHARED, "algo": algo, **kw})
    return Aligner(tiny_inpaint_pipeline(0, family=family), "brightness", cfg, data, out, device="cpu")


@pytest.mark.parametrize("family, algo, extra", [
    ("sd", "nft", {}),
    ("flux-fill", "nft", {}),
    ("sd", "dpo", {"online": True, "ref_refresh_every": 1}),
])
def test_online_runs_train_only_the_trained_weights(family, algo, extra, tmp_path):
    al = _aligner(family, algo, make_data(tmp_path / "data", n=4), tmp_path / "run", **extra)
    frozen = {n: p.detach().clone() for n, p in al.pipe.vae.named_parameters()}
    before = {n: p.detach().clone() for n, p in al.params.items()}
    res = al.train()
    assert res.iterations_done == 2 and al.algo == algo
    assert all(not torch.equal(before[n], p) for n, p in al.params.items())  # every LoRA tensor moved
    assert all(torch.equal(frozen[n], p) for n, p in al.pipe.vae.named_parameters())
    row = res.history[-1]
    assert np.isfinite(row["loss"]) and np.isfinite(row["reward_mean"])
    if algo == "nft":  # the implicit policies' norms are logged (NVlabs/DiffusionNFT#46)
        assert row["nft_positive_norm"] > 0 and row["nft_separation"] >= 0 and 0 <= row["r_mean"] <= 1
    record = json.loads((tmp_path / "run" / "align_config.json").read_text())
    assert record["algo"] == algo and record["algo_settings"]["loss_ring"] == 16


def test_offline_dpo_runs_from_ratings_and_reports_heldout_pairs(tmp_path):
    rated = write_rated(tmp_path / "rated", n_prompts=6)
    al = _aligner("sd", "dpo", rated, tmp_path / "run", eval_every=2, eval_size=2, eval_samples=1)
    assert len(al.data) == 6 and al.data.num_pairs == 18 and len(al.train_indices) == 4
    start = al.algorithm.eval_metrics(al)
    assert start["dpo_pairs"] == 6 and start["dpo_accuracy"] == 0.0 and start["dpo_margin"] == 0.0  # policy = reference
    before = {n: p.detach().clone() for n, p in al.params.items()}
    res = al.train()
    assert res.iterations_done == 2 and [e["iteration"] for e in res.evals] == [0, 2]
    assert all(not torch.equal(before[n], p) for n, p in al.params.items())
    assert "dpo_accuracy" in res.history[-1] and "reward_mean" not in res.history[-1]  # no sampling offline
    end = al.algorithm.eval_metrics(al)
    assert end["dpo_margin"] != 0.0
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert "eval/dpo_accuracy" in log


def test_offline_dpo_refuses_ratings_without_pairs_before_loading(tiny_pipeline_dir, tmp_path, monkeypatch):
    from prefpaint_sdk.engines.sd import SDInpaintEngine

    rated = write_rated(tmp_path / "rated", n_prompts=2, per_prompt=1)
    monkeypatch.setattr(SDInpaintEngine, "load", classmethod(lambda *a, **k: pytest.fail("the model was loaded")))
    with pytest.raises(DataError, match="gives no preference pair"):
        Aligner.from_pretrained(tiny_pipeline_dir, reward="brightness", data=rated, output_dir=tmp_path / "o",
                                algo="dpo", offline=True)


@pytest.mark.parametrize("algo, data_kind", [("nft", "prompts"), ("dpo", "rated")])
def test_resume_equals_uninterrupted(algo, data_kind, tmp_path):
    data = make_data(tmp_path / "data", n=4) if data_kind == "prompts" else write_rated(tmp_path / "rated")
    kw = dict(iterations=2, save_every=1)
    full = _aligner("sd", algo, data, tmp_path / "full", **kw)
    full.train()
    part = _aligner("sd", algo, data, tmp_path / "part", **{**kw, "iterations": 1})
    part.train()
    resumed = _aligner("sd", algo, data, tmp_path / "part", **kw)
    resumed.train(resume=True)
    assert resumed.iteration == 2
    for n, p in full.params.items():
        assert torch.allclose(p, resumed.params[n], atol=1e-6), n
    for n, t in full.old.tensors.items():
        assert torch.allclose(t, resumed.old.tensors[n], atol=1e-6), n
    other_algo = "ppo" if algo == "nft" else "nft"
    other = _aligner("sd", other_algo, make_data(tmp_path / "d2", n=4), tmp_path / "part", iterations=4,
                     **({"timesteps_per_traj": 2} if other_algo == "ppo" else {}))
    with pytest.raises(ConfigError, match=f"trained with algo='{algo}' but algo='{other_algo}'"):
        other.train(resume=True)  # a resume under another algorithm is refused


def test_nft_exports_load_in_diffusers_and_the_inpainter(tiny_pipeline_dir, tmp_path):
    from diffusers import StableDiffusionInpaintPipeline

    from prefpaint_sdk import Inpainter

    al = Aligner.from_pretrained(tiny_pipeline_dir, reward="brightness", data=make_data(tmp_path / "data", n=4),
                                 output_dir=tmp_path / "run", algo="nft", device="cpu",
                                 **{**SHARED, "iterations": 1, "learning_rate": 5e-2})
    assert al.algo == "nft"
    al.train()
    lora_dir, merged_dir = al.export_lora(tmp_path / "lora"), al.export_merged(tmp_path / "merged")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = Image.fromarray((np.arange(64)[:, None] > 20).repeat(64, 1).astype(np.uint8) * 255)

    def run(pipe):
        pipe.set_progress_bar_config(disable=True)
        with torch.inference_mode():
            return pipe(prompt="", image=img, mask_image=mask, height=64, width=64, num_inference_steps=3,
                        guidance_scale=1.0, generator=torch.Generator().manual_seed(0), output_type="np").images[0]

    fresh = StableDiffusionInpaintPipeline.from_pretrained(tiny_pipeline_dir, safety_checker=None,
                                                           requires_safety_checker=False)
    before = run(fresh)
    fresh.load_lora_weights(lora_dir)
    with_lora = run(fresh)
    assert np.abs(with_lora - before).max() > 1e-3  # the adapter changes the output
    merged = Inpainter.from_pretrained(merged_dir, device="cpu", dtype="float32").pipeline
    assert np.allclose(run(merged), with_lora, atol=2e-3)  # fused weights = base + adapter
