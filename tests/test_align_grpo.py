"""GRPO advantages (exact values), the grad-spike guard, and the algo/SDE settings."""

import math

import pytest
import torch

from prefpaint_sdk.align.config import AlignConfig
from prefpaint_sdk.align.loop import GradSpikeGuard
from prefpaint_sdk.align.loss import grpo_advantages
from prefpaint_sdk.errors import ConfigError

NAN = float("nan")


def test_group_advantages_exact_values():
    r = torch.tensor([1.0, 3.0, 2.0, 2.0, 0.0, 4.0, 5.0, 5.0])
    g = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out = grpo_advantages(r, g, "group", eps=0.0)
    # group 0: mean 2, std 1 -> -1, 1; group 1 and 3: equal rewards -> zero std; group 2: mean 2, std 2 -> -1, 1
    assert out.advantages.tolist() == [-1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0]
    assert out.valid.tolist() == [True, True, False, False, True, True, False, False]
    assert out.zero_std_ratio == 0.5


def test_global_std_divides_by_the_batch_std():
    r = torch.tensor([1.0, 3.0, 0.0, 4.0])
    g = torch.tensor([0, 0, 1, 1])
    out = grpo_advantages(r, g, "global", eps=0.0)
    s = torch.tensor([1.0, 3.0, 0.0, 4.0]).std(unbiased=False)  # population std of the whole batch
    assert torch.allclose(out.advantages, torch.tensor([-1.0, 1.0, -2.0, 2.0]) / s)
    assert out.zero_std_ratio == 0.0


def test_nan_rewards_are_left_out_of_their_group():
    r = torch.tensor([1.0, NAN, 3.0, NAN, 7.0, NAN, NAN])
    g = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    out = grpo_advantages(r, g, "group", eps=0.0)
    assert out.advantages.tolist() == [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert out.valid.tolist() == [True, False, True, False, False, False, False]
    assert out.zero_std_ratio == 0.5  # group 1 has one finite reward (zero std); group 2 none (not counted)


def test_advantages_are_clipped():
    r = torch.tensor([0.0] * 99 + [1.0])
    out = grpo_advantages(r, torch.zeros(100, dtype=torch.long), "group", clip=2.0)
    assert out.advantages.max() == 2.0 and math.isclose(float(out.advantages[0]), -1 / math.sqrt(99), rel_tol=1e-4)


def test_grad_spike_guard_skips_spikes_and_nan():
    guard = GradSpikeGuard(10.0, window=3)
    assert all(guard.accept(v) for v in (1.0, 2.0, 3.0))
    assert not guard.accept(25.0)  # > 10 x median 2
    assert not guard.accept(NAN) and not guard.accept(float("inf"))
    assert guard.accept(19.0) and guard.skipped == 3
    assert list(guard.norms) == [2.0, 3.0, 19.0]  # skipped norms never enter the window
    off = GradSpikeGuard(0.0)
    assert off.accept(1.0) and off.accept(1e9) and not off.accept(NAN)


def test_grad_spike_guard_takes_a_lasting_new_scale_instead_of_stalling():
    guard = GradSpikeGuard(10.0, window=3)
    assert all(guard.accept(1.0) for _ in range(3))
    assert not guard.accept(100.0) and not guard.accept(NAN) and not guard.accept(120.0)  # a NaN keeps the streak
    assert guard.accept(110.0) and list(guard.norms) == [110.0]  # the 3rd spike in a row: the new level
    assert guard.skipped == 3 and guard.streak == 0
    assert guard.accept(150.0) and not guard.accept(5000.0)  # judged against the new level from now on
    restored = GradSpikeGuard(10.0, window=3)
    restored.load(guard.state())
    assert restored.state() == guard.state()


def test_the_loops_optimizer_step_skips_a_huge_or_nan_gradient_and_keeps_the_weights():
    from types import SimpleNamespace

    from accelerate import Accelerator

    from prefpaint_sdk.align.loop import LoopServices

    acc = Accelerator(cpu=True)
    lin = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(lin.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    model, opt, sched = acc.prepare(lin, opt, sched)
    loop = LoopServices()
    loop.__dict__.update(config=SimpleNamespace(max_grad_norm=0), accelerator=acc, model=model,
                         params=dict(lin.named_parameters()), optimizer=opt, lr_scheduler=sched,
                         guard=GradSpikeGuard(10.0))

    def iteration(scale):  # one micro-batch and one optimizer step, as an algorithm's step does
        loop._reset_step_counters()
        with loop.grad_sync(True):
            loop.backward(model(torch.ones(1, 3)).sum() * scale)
        outcome = loop.optimizer_step()
        return outcome, loop._step_metrics()

    outcome, m = iteration(1.0)
    assert outcome.applied and m["skipped_updates"] == 0 and m["optimizer_steps"] == 1  # norm 2 remembered
    for v in (1e6, float("nan")):
        before = {n: p.detach().clone() for n, p in lin.named_parameters()}
        outcome, m = iteration(v)
        assert not outcome.applied and m["skipped_updates"] == 1 and m["optimizer_steps"] == 0
        assert all(torch.equal(before[n], p) for n, p in lin.named_parameters())
    assert loop.guard.skipped == 2


@pytest.mark.parametrize("overrides, sampler, pattern", [
    (dict(algo="nope"), None, "algo must be one of .*grpo.*ppo"),
    (dict(algo="grpo", adv_std="batch"), None, "adv_std must be"),
    (dict(algo="grpo", samples_per_prompt=1), None, "samples_per_prompt=1"),
    (dict(sde_noise=0.0), "flow", "sde_noise=0.0"),
    (dict(sde_noise=float("nan")), "flow", "sde_noise"),
    (dict(sde_window=-1), "flow", "sde_window must be >= 0"),
    (dict(sde_window=2, timesteps_per_traj=3), "flow", "timesteps_per_traj=3 exceeds sde_window=2"),
    (dict(grad_spike_factor=-1.0), None, "grad_spike_factor"),
    (dict(eta=0.0), "ddim", "eta=0.0"),
])
def test_new_settings_are_validated(overrides, sampler, pattern):
    with pytest.raises(ConfigError, match=pattern):
        AlignConfig().replace(**overrides).resolve().validate(sampler=sampler)


def test_eta_is_a_ddim_setting_only():
    AlignConfig().replace(eta=0.0, timesteps_per_traj=2).resolve().validate(sampler="flow")  # FLUX has no eta
