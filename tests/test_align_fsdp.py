"""Sharded full fine-tuning (``fsdp=True``, torch FSDP2 on gloo): two torchrun CPU processes.

The sharded run trains the same weights as the replicated (DDP) one, resumes exactly from its checkpoint, and
exports a pipeline that ``Inpainter.from_pretrained`` loads; the refusals come before any model loads.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers_align import fast_config, make_data
from _serve_helpers import free_port

from prefpaint_sdk.errors import ConfigError

HERE = Path(__file__).resolve().parent


def _torchrun(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
    env.pop("ACCELERATE_USE_CPU", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(HERE / "_align_fsdp_script.py"), *map(str, args)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=HERE)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-4000:]


def _params(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "params.safetensors"))


@pytest.mark.slow
def test_fsdp_trains_as_ddp_resumes_exactly_and_exports(tmp_path):
    import torch

    data = make_data(tmp_path / "data", n=8)
    _torchrun(["ddp", data, tmp_path / "ddp"], tmp_path)
    _torchrun(["fsdp", data, tmp_path / "fsdp"], tmp_path)
    ddp, fsdp = _params(tmp_path / "ddp"), _params(tmp_path / "fsdp")
    recs = [json.loads((tmp_path / "fsdp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    ddp_rec = json.loads((tmp_path / "ddp" / "rank0.json").read_text())
    # really sharded: every trained tensor a DTensor, each process holding about half of the weights
    for rec in recs:
        assert rec["num_processes"] == 2 and rec["sharded"] == rec["n_params"] > 0
        assert rec["local_numel"] < 0.6 * rec["full_numel"]
        assert rec["wrapper"].startswith("FSDP")
    assert recs[0]["local_numel"] + recs[1]["local_numel"] >= recs[0]["full_numel"]
    assert ddp_rec["sharded"] == 0 and ddp_rec["wrapper"] == "DistributedDataParallel"
    assert recs[0]["ref_sharded"] is True and ddp_rec["ref_sharded"] is False  # PPO's KL reference (kl_coef > 0)
    assert all(h["kl_ref"] > 0 for h in recs[0]["history"][1:])
    assert [h["optimizer_steps"] for h in recs[0]["history"]] == [h["optimizer_steps"] for h in ddp_rec["history"]]
    assert sum(h["optimizer_steps"] for h in ddp_rec["history"]) >= 2
    # Same rollouts, same whole-model gradients; only the order of float sums differs (DDP's all-reduce against
    # FSDP's reduce-scatter and sharded norm). Seen: 1.5e-7 against a change of > 1e-4. The script's adam_eps=1e-4
    # keeps AdamW's first steps (about lr x sign(g)) from magnifying those ulps where a gradient is ~1e-8: with
    # the default eps 1e-8 a few such weights differed by 1.5e-4 (15% of one lr step), from float order alone.
    assert set(ddp) == set(fsdp)
    base = tiny_base_unet_state()
    moved = max(float((ddp[k] - base[k]).abs().max()) for k in ddp)
    assert moved > 1e-4  # training changed the weights
    worst = max(float((ddp[k] - fsdp[k]).abs().max()) for k in ddp)
    assert worst < 1e-5, worst
    for a, b in zip(recs[0]["history"], ddp_rec["history"]):
        assert a["reward_mean"] == pytest.approx(b["reward_mean"], rel=1e-5, abs=1e-6)
    # evaluation (every process samples the held-out pairs when sharded): the same held-out rewards as DDP's
    assert [e["iteration"] for e in recs[0]["evals"]] == [e["iteration"] for e in ddp_rec["evals"]] == [0, 1, 2]
    for a, b in zip(recs[0]["evals"], ddp_rec["evals"]):
        assert a["mean_reward"] == pytest.approx(b["mean_reward"], rel=1e-5, abs=1e-6)
    assert recs[0]["evals"][-1]["win_rate"] is not None
    assert sorted(p.name for p in (tmp_path / "fsdp" / "eval").glob("iter_*.png")) == [
        "iter_000000.png", "iter_000001.png", "iter_000002.png"]

    # exact resume: from the iteration-1 checkpoint, the second iteration again gives the same weights
    res = tmp_path / "resume"
    shutil.copytree(tmp_path / "fsdp" / "checkpoints", res / "checkpoints")
    shutil.copy(tmp_path / "fsdp" / "align_config.json", res / "align_config.json")
    shutil.rmtree(res / "checkpoints" / "iter_000002")
    (res / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": "iter_000001"}))
    _torchrun(["resume", data, res], tmp_path)
    resumed = _params(res)
    assert json.loads((res / "rank0.json").read_text())["history"][0]["iteration"] == 2
    for k in fsdp:
        assert torch.equal(resumed[k], fsdp[k]), k

    # the merged export (gathered on rank 0) loads and carries the trained weights
    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(str(tmp_path / "fsdp" / "export" / "merged"), device="cpu")
    unet = inp.pipeline.unet.state_dict()
    for k in fsdp:
        assert torch.equal(unet[k].float(), fsdp[k]), k


@pytest.mark.slow
def test_fsdp_shards_the_flux_transformer_blocks_as_ddp_trains_them(tmp_path):
    """GRPO on the tiny FLUX Fill (transformer_blocks and single_transformer_blocks sharded): same weights as DDP."""
    data = make_data(tmp_path / "data", n=8)
    _torchrun(["flux-ddp", data, tmp_path / "ddp"], tmp_path)
    _torchrun(["flux-fsdp", data, tmp_path / "fsdp"], tmp_path)
    ddp, fsdp = _params(tmp_path / "ddp"), _params(tmp_path / "fsdp")
    rec = json.loads((tmp_path / "fsdp" / "rank0.json").read_text())
    assert rec["wrapper"] == "FSDPFluxTransformer2DModel" and rec["sharded"] == rec["n_params"] > 0
    assert sum(h["optimizer_steps"] for h in rec["history"]) == 2
    assert set(ddp) == set(fsdp)
    worst = max(float((ddp[k] - fsdp[k]).abs().max()) for k in ddp)
    assert worst < 1e-5, worst  # seen: 4.5e-8


def tiny_base_unet_state():
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    return {k: v.detach().float() for k, v in tiny_inpaint_pipeline(0).unet.state_dict().items()}


@pytest.mark.parametrize("changes, world, words", [
    (dict(finetune="lora"), "2", "finetune='lora'"),
    (dict(finetune="full"), "1", "this run has 1"),
    (dict(finetune="full", mixed_precision="fp16"), "2", "bf16"),
])
def test_fsdp_refusals_name_the_setting(monkeypatch, changes, world, words):
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(ConfigError) as err:
        fast_config(fsdp=True, **changes).resolve().validate()
    assert "fsdp" in str(err.value) and words in str(err.value)


def test_fsdp_refuses_a_gold_reward(monkeypatch):
    from prefpaint_sdk.align.guards import check_guards

    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = fast_config(fsdp=True, finetune="full").resolve().validate()
    with pytest.raises(ConfigError, match="gold reward"):
        check_guards(cfg, "brightness")
    check_guards(cfg, None)


def test_fsdp_is_accepted_for_full_fine_tuning_under_two_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert fast_config(fsdp=True, finetune="full").resolve().validate().fsdp is True
    monkeypatch.delenv("WORLD_SIZE")
    assert fast_config(fsdp=True, finetune="full").resolve().validate(num_processes=2).fsdp is True


@pytest.mark.parametrize("extra, world, words", [
    ([], "1", "this run has 1"),
    (["--finetune", "lora"], "2", "finetune='lora'"),
    (["--gold-reward", "brightness"], "2", "gold reward"),
])
def test_cli_refuses_fsdp_in_one_line_before_loading(tmp_path, monkeypatch, extra, world, words):
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("WORLD_SIZE", world)
    data = make_data(tmp_path / "data", n=6)
    res = CliRunner().invoke(app, ["train", "align", "--data", str(data), "--out", str(tmp_path / "o"),
                                   "--model", str(tmp_path / "no-model-here"), "--preset", "cpu-smoke", "--offline",
                                   "--reward", "brightness", "--set", "fsdp=true", *extra])
    # exit 2 (bad input), not 3: refused before the (missing) model is even looked up
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "fsdp" in text and words in text and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()
