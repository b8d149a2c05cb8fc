"""The alignment refactor (issue 20: one shared loop, one module per algorithm) moves nothing: PPO and GRPO
give bit-identical trained weights after 2 iterations with a fixed seed, on the tiny SD and FLUX Fill fixtures.

The hashes below were recorded at commit 74603ae (main, before the refactor) with this file's cases, on
CPU with one torch thread (the hash depends on torch's CPU kernels and their thread count). If torch or
diffusers is upgraded, re-record them at a commit whose trainer is known good, and say so here.

Re-recorded once, on purpose: the three LoRA cases on 2026-12-06, when the adapters' initial values started to
come from the run's own seed (``derive_seed(seed, 131)``) instead of torch's global generator
(tests/test_align_lora_seed.py). Only those three moved; the full fine-tuning case kept its 74603ae hash.
"""

import hashlib

import pytest
import torch
from _helpers_align import fast_config, make_data

from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.reward.constraints import brightness_in_mask
from prefpaint_sdk.testing import tiny_inpaint_pipeline

# case -> (family, config overrides)
CASES = {
    "sd-ppo-lora-kl": ("sd", dict(algo="ppo", kl_coef=0.01, l1_coef=0.1)),
    "sd-ppo-full-kl": ("sd", dict(algo="ppo", finetune="full", kl_coef=0.01)),
    "sd-grpo-lora": ("sd", dict(algo="grpo", adv_std="global")),
    "flux-grpo-lora-kl": ("flux-fill", dict(algo="grpo", kl_coef=0.01, sde_window=2, sde_window_start=-1)),
}

# Recorded at commit 74603ae (before the refactor), the LoRA cases re-recorded as the module docstring says.
EXPECTED = {
    "sd-ppo-lora-kl": "9febaedda691615008823080e10f77b63aab13e929f9154b3485f8ae472f14c2",
    "sd-ppo-full-kl": "fff191947a10029446730cc9da6ad241f8dc6a8672bbd2343fb6484d00b9264b",
    "sd-grpo-lora": "93856358f9df1a93b1047ad2589aea6103f04ffbcb8ef430138b9c2c64d6a348",
    "flux-grpo-lora-kl": "ddd2ae6afb1448e0798e5b03698d4f22f1e32e9bb747824e99820bc8b72b54e9",
}


def _reward(images, masks, masked):
    """Brightness in the hole, with a bound that varies per sample so the trust weights are not all equal."""
    scores = brightness_in_mask(images, masks, masked)
    return scores, 20.0 * scores


def weights_hash(params: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode())
        h.update(params[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("hash") / "data", n=6, with_masks=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_iterations_give_the_recorded_weights(case, data, tmp_path):
    family, over = CASES[case]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        al = Aligner(tiny_inpaint_pipeline(0, family=family), _reward, fast_config(seed=3, **over), data,
                     tmp_path / "run", device="cpu")
        start = weights_hash(al.params)
        al.train()
        got = weights_hash(al.params)
    finally:
        torch.set_num_threads(threads)
    assert got != start  # the 2 iterations trained something
    assert got == EXPECTED[case], f"{case}: {got}"
