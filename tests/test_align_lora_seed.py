"""A LoRA run's start depends on its own seed only: the adapters' initial values come from ``seed``, not from
whatever the process drew before, and building an aligner leaves torch's global generator as it was."""

import torch
from _helpers_align import fast_config, make_data

from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.reward.constraints import brightness_in_mask
from prefpaint_sdk.testing import tiny_inpaint_pipeline


def _reward(images, masks, masked):
    s = brightness_in_mask(images, masks, masked)
    return s, s


def _initial_lora(data, tmp_path, name, seed, global_seed):
    pipe = tiny_inpaint_pipeline(0)  # (its builder seeds the global generator: set ours after it)
    torch.manual_seed(global_seed)
    state = torch.get_rng_state()
    al = Aligner(pipe, _reward, fast_config(seed=seed), data, tmp_path / name, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)  # building the aligner drew nothing from the global one
    return {n: p.detach().clone() for n, p in al.params.items()}


def test_lora_init_follows_the_run_seed_not_the_process_state(tmp_path):
    data = make_data(tmp_path / "data", n=2, with_masks=True)
    a = _initial_lora(data, tmp_path, "a", seed=3, global_seed=0)
    b = _initial_lora(data, tmp_path, "b", seed=3, global_seed=12345)
    c = _initial_lora(data, tmp_path, "c", seed=4, global_seed=0)
    assert a.keys() == b.keys() == c.keys() and any("lora_A" in n for n in a)
    assert all(torch.equal(a[n], b[n]) for n in a)  # same run seed: the same start, whatever came before
    assert any(not torch.equal(a[n], c[n]) for n in a if "lora_A" in n)  # another seed: another start
