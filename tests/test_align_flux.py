"""The Aligner trains FLUX.1 Fill by GRPO through its engine's flow-matching SDE rollout: LoRA on the
transformer changes it and nothing frozen; the LoRA export loads into FluxFillPipeline and changes its
output; the merged export loads in Inpainter; an interrupted run resumed equals an uninterrupted one."""

import numpy as np
import pytest
import torch
from _helpers_align import fast_config, make_data
from PIL import Image

from prefpaint_sdk import Inpainter
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    return make_data(tmp_path_factory.mktemp("flux") / "data", n=4)


def _aligner(data, out, **kw):
    return Aligner(tiny_inpaint_pipeline(0, family="flux-fill"), "brightness", fast_config(**kw), data, out,
                   device="cpu")


def test_flux_grpo_lora_run_trains_the_transformer_and_exports(data, tmp_path):
    al = _aligner(data, tmp_path / "run", kl_coef=0.01)
    assert al.engine.family == "flux-fill" and al.algo == "grpo"
    assert any("transformer_blocks.0.attn.add_q_proj.lora_A" in n for n in al.params)  # the engine's targets
    before = {k: v.detach().clone() for k, v in al.params.items()}
    frozen = {k: v.detach().clone() for k, v in al.pipe.text_encoder_2.state_dict().items()}
    res = al.train()
    assert any(not torch.equal(before[k], v) for k, v in al.params.items())
    assert all(torch.equal(frozen[k], v) for k, v in al.pipe.text_encoder_2.state_dict().items())
    h = res.history[0]
    assert {"zero_std_ratio", "skipped_updates", "grad_norm", "kl_ref"} <= set(h) and h["skipped_updates"] == 0
    assert h["kl_ref"] == 0.0 or np.isfinite(h["kl_ref"])

    lora = al.export_lora(tmp_path / "lora")
    base = tiny_inpaint_pipeline(0, family="flux-fill")
    base.text_encoder_2.eval()
    img = Image.open(next((data / "images").glob("*.png"))).convert("RGB").resize((32, 32))
    hole = Image.fromarray(np.pad(np.full((16, 16), 255, np.uint8), 8), "L")

    def run(pipe):
        with torch.inference_mode():
            return pipe(image=img, mask_image=hole, prompt="", height=32, width=32, num_inference_steps=2,
                        generator=torch.Generator().manual_seed(0), output_type="pt").images

    out0 = run(base)
    base.load_lora_weights(str(lora))
    assert not torch.allclose(run(base), out0, atol=1e-6)  # the adapter loaded and changes the output

    merged = al.export_merged(tmp_path / "merged")
    inp = Inpainter.from_pretrained(merged, device="cpu", dtype="float32", offline=True)
    assert inp.family == "flux-fill"
    arr = np.asarray(img)
    m = np.zeros(arr.shape[:2], bool)
    m[8:24, 8:24] = True
    res = inp(arr, m, seed=0, steps=2, mask_blur=0)
    assert np.array_equal(np.asarray(res.image)[~m], arr[~m])


def test_flux_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(iterations=3, resync_every=2, save_every=1, sde_window=2, sde_window_start=-1)
    full = _aligner(data, tmp_path / "full", **kw)
    full.train()
    part = _aligner(data, tmp_path / "part", **{**kw, "iterations": 2})
    part.train()
    resumed = _aligner(data, tmp_path / "part", **kw)
    resumed.train(resume=True)
    assert resumed.iteration == 3
    for n, p in full.params.items():
        assert torch.allclose(p, resumed.params[n], atol=1e-6), n
    assert full.guard.state() == resumed.guard.state()
