"""The merged export keeps the base model's dtype and exact values for what was not trained.

Under mixed precision the frozen VAE and text encoder (and, for LoRA, the UNet's base weights) run in
bf16; the export must not save those rounded copies. "Training" is simulated by setting the trainable
tensors directly, so the test is fast and knows the exact expected result.
"""

from __future__ import annotations

import pytest
import torch
from _helpers_align import fast_config, make_data
from safetensors.torch import load_file

from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_dtype")
    return save_tiny_inpaint_pipeline(root / "base", seed=0), make_data(root / "data", n=4)


def _weights(folder, component):
    (f,) = sorted((folder / component).glob("*.safetensors"))
    return load_file(str(f))


def _aligner(base, tmp_path, finetune):
    folder, data = base
    cfg = fast_config(mixed_precision="bf16", finetune=finetune)
    al = Aligner.from_pretrained(folder, "brightness", cfg, data, tmp_path / "run", device="cpu")
    assert al.pipe.vae.dtype == torch.bfloat16 and al.pipe.text_encoder.dtype == torch.bfloat16  # really cast
    return al


def _frozen_parts_are_the_base(folder, merged):
    for comp in ("vae", "text_encoder"):
        a, b = _weights(folder, comp), _weights(merged, comp)
        assert set(a) == set(b), comp
        for k in a:
            assert b[k].dtype == a[k].dtype == torch.float32 and torch.equal(a[k], b[k]), (comp, k)


def test_lora_merge_under_bf16_adds_exact_deltas_to_the_fp32_base(base, tmp_path, fresh_accelerate_state):
    from peft.tuners.lora import LoraLayer

    folder, _ = base
    al = _aligner(base, tmp_path, "lora")
    assert next(p for n, p in al.raw_model.named_parameters() if "lora_" not in n).dtype == torch.bfloat16
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in al.params.items():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)  # a "trained" adapter
    expected = {}
    for name, m in al.raw_model.named_modules():
        if isinstance(m, LoraLayer) and "default" in m.lora_A:
            a, b = m.lora_A["default"].weight.float(), m.lora_B["default"].weight.float()
            delta = b.flatten(1) @ a.flatten(1) * m.scaling["default"]
            expected[f"{name.removesuffix('.base_layer')}.weight"] = delta
    merged = al.export_merged(tmp_path / "merged")

    _frozen_parts_are_the_base(folder, merged)
    u0, u1 = _weights(folder, "unet"), _weights(merged, "unet")
    assert set(u0) == set(u1) and {t.dtype for t in u1.values()} == {torch.float32}
    assert expected and set(expected) < set(u0)
    for k in u0:
        if k in expected:
            want = u0[k] + expected[k].reshape(u0[k].shape)
            assert torch.allclose(u1[k], want, atol=1e-6, rtol=0), k
            assert not torch.equal(u1[k], u0[k]), k
        else:
            assert torch.equal(u1[k], u0[k]), k  # untouched by LoRA: bit-identical to the fp32 base


def test_full_finetune_under_bf16_exports_the_fp32_unet_and_untouched_frozen_parts(base, tmp_path, fresh_accelerate_state):
    folder, _ = base
    al = _aligner(base, tmp_path, "full")
    with torch.no_grad():
        p = al.params["conv_in.weight"]
        assert p.dtype == torch.float32
        p.add_(0.125)
    merged = al.export_merged(tmp_path / "merged")
    _frozen_parts_are_the_base(folder, merged)
    u0, u1 = _weights(folder, "unet"), _weights(merged, "unet")
    assert {t.dtype for t in u1.values()} == {torch.float32}
    assert torch.equal(u1["conv_in.weight"], u0["conv_in.weight"] + 0.125)
    assert torch.equal(u1["conv_out.weight"], u0["conv_out.weight"])
