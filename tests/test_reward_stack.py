"""Rewards as a stack (issue 22): specs, the normalisations on a hand-computed batch, the stack object."""

from __future__ import annotations

import math

import pytest
import torch

from prefpaint_sdk.errors import ConfigError, InvalidInputError, ModelNotFoundError, PickleRefusedError
from prefpaint_sdk.reward.base import RewardScores
from prefpaint_sdk.reward.normalize import combine, group_normalise, whiten, win_rates
from prefpaint_sdk.reward.specs import RewardSpec, load_stack, parse_spec, resolve_reward, stack_specs
from prefpaint_sdk.reward.stack import RewardStack

NAN = float("nan")
# Two rewards on four samples in two groups; reward 1 has 10x the scale of reward 0.
S = torch.tensor([[1.0, 3.0, 2.0, 2.0], [10.0, 10.0, 0.0, 40.0]])
G = torch.tensor([0, 0, 1, 1])
W = (1.0, 0.5)


# ------------------------------------------------------------------------------------------------
# normalisation: exact values worked out by hand


def test_gdpo_exact():
    # r0 in its groups: [-1, 1], [0, 0] (no spread); r1: [0, 0], [-1, 1]. Weighted: [-1, 1, -0.5, 0.5],
    # mean 0, std sqrt(2.5 / 4) -> whitened [-sqrt(1.6), sqrt(1.6), -sqrt(0.4), sqrt(0.4)].
    a = combine(S, W, G, "gdpo")
    assert a.tolist() == pytest.approx([-math.sqrt(1.6), math.sqrt(1.6), -math.sqrt(0.4), math.sqrt(0.4)], abs=1e-12)


def test_sum_exact_and_dominated_by_the_large_scale():
    # raw weighted sums [6, 8, 2, 22] -> per group [-1, 1], [-1, 1]: group 1's order is reward 1's alone
    assert combine(S, W, G, "sum").tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0], abs=1e-12)


def test_rank_exact():
    assert win_rates(torch.tensor([2.0, 2.0, 1.0])).tolist() == pytest.approx([0.75, 0.75, 0.0])  # a tie is 1/2
    # win-rates [1, 0, 0.5] in group 0 and 0.5 alone in group 1; whitened: mean 0.5, std sqrt(0.125)
    a = combine(torch.tensor([3.0, 1.0, 2.0, 2.0]), (1.0,), torch.tensor([0, 0, 0, 1]), "rank")
    assert a.tolist() == pytest.approx([math.sqrt(2), -math.sqrt(2), 0.0, 0.0], abs=1e-12)
    # rank is blind to any monotone change of a reward's scale
    assert torch.allclose(combine(S, W, G, "rank"), combine(torch.stack([S[0] ** 3, S[1] * 1e6]), W, G, "rank"))


def test_gdpo_is_blind_to_a_rewards_scale_and_sum_is_not():
    scaled = torch.stack([S[0], S[1] * 1000.0])
    assert torch.allclose(combine(S, W, G, "gdpo"), combine(scaled, W, G, "gdpo"))
    # one group of three: the raw sum follows the large reward alone (sample 0 best); gdpo weighs both equally
    # (z0 = [-c, 0, c], z1 = [c, -c, 0] with c = sqrt(1.5), so sample 2 best)
    s = torch.tensor([[1.0, 2.0, 3.0], [30.0, 10.0, 20.0]])
    assert int(combine(s, (1, 1), None, "sum").argmax()) == 0
    c = math.sqrt(1.5)
    assert combine(s, (1, 1), None, "gdpo").tolist() == pytest.approx(whiten(torch.tensor([0.0, -c, c])).tolist())


def test_nan_drops_the_sample_everywhere():
    s = S.clone()
    s[1, 3] = NAN
    a = combine(s, W, G, "gdpo")
    assert math.isnan(a[3])
    # sample 3 left out: group 1 is sample 2 alone (0 in both rewards); weighted [-1, 1, 0] whitened
    want = whiten(torch.tensor([-1.0, 1.0, 0.0]))
    assert a[:3].tolist() == pytest.approx(want.tolist(), abs=1e-12)
    assert group_normalise(torch.tensor([1.0, NAN, 3.0])).tolist()[::2] == [-1.0, 1.0]


@pytest.mark.parametrize("args, pattern", [
    ((S, (1.0,), G, "gdpo"), "1 reward weights for 2 rewards"),
    ((S, W, G, "mean"), "must be one of gdpo, sum, rank"),
    ((S, W, torch.tensor([0, 1]), "gdpo"), "2 group ids for 4 samples"),
])
def test_combine_refusals(args, pattern):
    with pytest.raises(ConfigError, match=pattern):
        combine(*args)


# ------------------------------------------------------------------------------------------------
# the stack object


def _fixed(scores, bounds=None):
    def f(images, masks, masked_images):
        return RewardScores(torch.tensor(scores), None if bounds is None else torch.tensor(bounds))
    return f


def test_stack_call_gives_every_reward_and_the_advantage():
    imgs, masks = torch.zeros(4, 3, 8, 8), torch.zeros(4, 8, 8, dtype=torch.bool)
    stack = RewardStack([_fixed(S[0].tolist(), [1.0] * 4), lambda im, m, mi: S[1]], labels=["a", "a"], weights=W)
    out = stack(imgs, masks, imgs, groups=G)
    assert list(out.rewards) == ["a", "a#2"]  # repeated labels made unique
    assert out.rewards["a"].bounds.tolist() == [1.0] * 4 and out.rewards["a#2"].bounds is None
    assert torch.equal(out.advantages, combine(S, W, G, "gdpo"))
    summary = out.summary()
    assert summary["a"]["mean"] == pytest.approx(2.0) and summary["a#2"]["std"] == pytest.approx(15.0)
    # over the batch: z of r0 = [-sqrt2, sqrt2, 0, 0] (mean |z| 1/sqrt2), of r1 = [-1/3, -1/3, -1, 5/3] (mean |z| 5/6)
    share = (1 / math.sqrt(2)) / (1 / math.sqrt(2) + 0.5 * 5 / 6)
    assert summary["a"]["share"] == pytest.approx(share) and summary["a#2"]["share"] == pytest.approx(1 - share)
    assert stack.needs_original is False and stack.needs_prompts is False
    with pytest.raises(ConfigError, match="3 reward weights for 2 rewards"):
        RewardStack([_fixed([0.0]), _fixed([1.0])], weights=(1, 2, 3))
    with pytest.raises(InvalidInputError, match="returned 3 scores for 4 images"):
        RewardStack([_fixed([1.0, 2.0, 3.0])]).score(imgs, masks, imgs)


def test_builtin_names_in_a_stack_and_their_needs():
    stack = RewardStack(["brightness", "seam", "outside-change"], labels=["brightness", "seam", "outside-change"])
    assert stack.needs_original and not stack.needs_prompts
    img = torch.full((2, 3, 40, 40), 0.5)
    hole = torch.zeros(2, 40, 40, dtype=torch.bool)
    hole[:, 4:12, 4:12] = True
    rec = stack.score(img, hole, img)
    assert rec["brightness"].scores.tolist() == pytest.approx([0.5, 0.5])
    assert rec["seam"].scores.abs().tolist() == [0.0, 0.0] and rec["outside-change"].scores.abs().tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------------------------------
# specs


@pytest.mark.parametrize("text, want", [
    ("seam", RewardSpec("seam")), ("prefpaint", RewardSpec("prefpaint")),
    ("prefpaint=kd5678/prefpaintReward", RewardSpec("prefpaint", "kd5678/prefpaintReward")),
    ("kd5678/prefpaintReward", RewardSpec("prefpaint", "kd5678/prefpaintReward")),  # --reward-model's form
    ("clip=yuvalkirstain/PickScore_v1", RewardSpec("clip", "yuvalkirstain/PickScore_v1")),
    ("remote=http://127.0.0.1:8000/", RewardSpec("remote", "http://127.0.0.1:8000/")),
    ("runs/a=b/rm", RewardSpec("prefpaint", "runs/a=b/rm")),  # a path holding '='
])
def test_parse_spec(text, want):
    assert parse_spec(text) == want


@pytest.mark.parametrize("text, pattern", [
    ("shiny", "'shiny' is neither a built-in reward name"), ("shiny=x", "unknown reward 'shiny'"),
    ("clip", "needs a source; write clip="), ("remote", "remote=http://HOST:PORT"),
    ("seam=x", "takes no source"), ("clip=", "empty source"), ("remote=ftp://h:1", "not an http"),
    ("remote=http://h:99999", "not an http"), ("", "is empty"),
])
def test_parse_spec_refusals(text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_spec(text)


def test_stack_specs_checks_weights_and_norm():
    assert stack_specs(["seam", "brightness"], "1,0.5")[1] == (1.0, 0.5)
    assert stack_specs(["seam"])[1] == (1.0,)
    with pytest.raises(ConfigError, match="gives 3 weights for 2 rewards"):
        stack_specs(["seam", "brightness"], "1,2,3")
    with pytest.raises(ConfigError, match="must be one of gdpo, sum, rank"):
        stack_specs(["seam"], None, "avg")


def test_resolve_remote_unreachable_and_pickle_only_clip(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelNotFoundError, match=f"127.0.0.1:{port} is unreachable"):
        resolve_reward(f"remote=http://127.0.0.1:{port}")
    folder = tmp_path / "pickled-clip"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "clip"}')
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(PickleRefusedError, match="only pickled weights"):
        resolve_reward(f"clip={folder}")
    (folder / "config.json").write_text('{"model_type": "siglip"}')
    with pytest.raises(Exception, match="is a 'siglip' model, not a CLIPModel"):
        resolve_reward(f"clip={folder}")


def test_load_stack_end_to_end(tmp_path):
    from prefpaint_sdk.testing import save_tiny_reward_model
    from prefpaint_sdk.testing.rewards import save_tiny_clip_model

    rm = save_tiny_reward_model(tmp_path / "rm")
    clip = save_tiny_clip_model(tmp_path / "clip")
    stack = load_stack([f"prefpaint={rm}", f"clip={clip}", "seam"], "1,0.5,2", "rank", device="cpu", offline=True)
    assert stack.labels == ["prefpaint", "clip", "seam"] and stack.weights == (1.0, 0.5, 2.0) and stack.norm == "rank"
    assert stack.needs_prompts
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 3, 32, 32, generator=g)
    hole = torch.zeros(3, 32, 32, dtype=torch.bool)
    hole[:, 8:24, 8:24] = True
    out = stack(img, hole, img * ~hole[:, None], prompts=["a", "b", "c"])
    assert out.rewards["prefpaint"].bounds is not None and out.rewards["prefpaint"].trust is not None
    assert torch.isfinite(out.scores).all() and out.advantages.shape == (3,)
    assert torch.allclose(out.advantages, combine(out.scores, (1.0, 0.5, 2.0), None, "rank"))
