"""``scheduler="auto"`` (issue 21, section 4): ``native`` for a base model, ``ddim`` for PrefPaint and for a model
this toolkit aligned with DDIM, whose merged export records its sampler (``prefpaint_sampler.json``)."""

from __future__ import annotations

import json

import pytest
import torch
from _helpers_align import fast_config, make_data

from prefpaint_sdk import Inpainter, InvalidInputError, hub, model_info
from prefpaint_sdk.engines import engine_class, engine_for_pipeline
from prefpaint_sdk.engines.sampler_record import SAMPLER_RECORD, read_sampler_record, sampler_record


@pytest.fixture(scope="module")
def export(tmp_path_factory, tiny_pipeline_dir):
    """The tiny SD model aligned for one iteration (DDIM rollouts), exported by the Aligner's own export."""
    from accelerate.state import AcceleratorState

    from prefpaint_sdk.align.trainer import Aligner

    root = tmp_path_factory.mktemp("sched_auto")
    AcceleratorState._reset_state(reset_partial_state=True)
    cfg = fast_config(iterations=1, eval_every=0, save_every=0, log_with="none", eta=0.8)
    al = Aligner.from_pretrained(tiny_pipeline_dir, "brightness", cfg, make_data(root / "data", n=4), root / "run",
                                 device="cpu")
    al.train()
    out = al.export(root / "export")
    AcceleratorState._reset_state(reset_partial_state=True)
    return out["merged"]


def test_a_base_model_samples_with_its_shipped_scheduler(tiny_pipeline_dir):
    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32")
    assert inp.engine.scheduler_mode == "native" and not (tiny_pipeline_dir / SAMPLER_RECORD).exists()
    # the pipeline's own defaults (the tiny SD ships a DDIM config, so its eta is the pipeline's 0.0)
    assert inp.defaults == dict(steps=50, guidance_scale=7.5, eta=0.0, strength=1.0)
    info = model_info(tiny_pipeline_dir)
    assert (info.scheduler, info.defaults) == ("native", inp.defaults)
    assert model_info(hub.BASE_MODEL, offline=True).scheduler == "native"


def test_prefpaint_samples_with_ddim_eta_1(tiny_pipeline_dir):
    engine = engine_class("sd").load(tiny_pipeline_dir, device="cpu", dtype="float32", model_id=hub.DEFAULT_MODEL)
    assert engine.scheduler_mode == "ddim" and engine.default_eta == 1.0
    assert type(engine.pipeline.scheduler).__name__ == "DDIMScheduler"
    info = model_info(hub.DEFAULT_MODEL, offline=True)  # the published id, not cached: the engine lists it
    assert info.scheduler == "ddim" and info.defaults["eta"] == 1.0
    assert model_info("prefpaint", offline=True).scheduler == "ddim"  # the alias too
    # the user's choice wins over auto
    native = engine_class("sd").load(tiny_pipeline_dir, device="cpu", dtype="float32", model_id=hub.DEFAULT_MODEL,
                                     scheduler="native")
    assert native.scheduler_mode == "native"


def test_an_aligned_export_records_ddim_and_loads_with_it(export):
    record = json.loads((export / SAMPLER_RECORD).read_text())
    assert record == {"scheduler": "ddim", "eta": 0.8, "algo": "ppo"}
    inp = Inpainter.from_pretrained(export, device="cpu", dtype="float32")
    assert inp.engine.scheduler_mode == "ddim" and inp.defaults["eta"] == 0.8  # the eta it was aligned with
    assert type(inp.pipeline.scheduler).__name__ == "DDIMScheduler"
    assert inp.engine.describe()["sampler"] == "ddim"
    info = model_info(export)
    assert info.scheduler == "ddim" and info.defaults == inp.defaults
    assert Inpainter.from_pretrained(export, device="cpu", dtype="float32", scheduler="native").engine.scheduler_mode \
        == "native"
    # plain diffusers ignores the record and loads the folder
    from diffusers import DiffusionPipeline

    assert type(DiffusionPipeline.from_pretrained(export, torch_dtype=torch.float32)).__name__ == \
        "StableDiffusionInpaintPipeline"


def test_a_flow_family_records_native_and_a_built_pipeline_is_native():
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    flux = engine_for_pipeline(tiny_inpaint_pipeline(0, family="flux-fill"), training=True)
    assert sampler_record(flux, eta=1.0, algo="grpo") == {"scheduler": "native", "algo": "grpo"}
    sd = tiny_inpaint_pipeline(0)
    assert engine_for_pipeline(sd).scheduler_mode == "native"  # no record: a base model
    assert engine_for_pipeline(sd, training=True).scheduler_mode == "ddim"  # what alignment trains on
    native = engine_for_pipeline(tiny_inpaint_pipeline(0, family="sdxl"))  # an Inpainter's engine, say
    trained = engine_for_pipeline(native, training=True)
    assert native.scheduler_mode == "native" and trained.scheduler_mode == "ddim"
    assert (trained.pipeline.scheduler.config.clip_sample, trained.pipeline.scheduler.config.set_alpha_to_one) == \
        (False, False)  # the latent DDIM, not DDIM's pixel-space defaults


@pytest.mark.parametrize("text, match", [("{", "not readable JSON"), ('{"scheduler": "euler"}', "must be a JSON object"),
                                         ('{"scheduler": "ddim", "eta": 7}', "eta must be a number")])
def test_a_bad_record_is_refused_naming_the_file(tmp_path, text, match):
    (tmp_path / SAMPLER_RECORD).write_text(text)
    with pytest.raises(InvalidInputError, match=match):
        read_sampler_record(tmp_path)


def test_the_cli_refuses_a_bad_record_in_one_line_before_loading(tiny_pipeline_dir, tmp_path):
    import shutil

    import numpy as np
    from PIL import Image
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    folder = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, folder)
    (folder / SAMPLER_RECORD).write_text('{"scheduler": "euler"}')
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "mask.png")
    r = CliRunner().invoke(app, ["inpaint", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "-o",
                                 str(tmp_path / "out.png"), "--model", str(folder), "--device", "cpu", "--quiet",
                                 "--offline", "--steps", "1"])
    assert r.exit_code == 2 and SAMPLER_RECORD in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out.png").exists()
    # an explicit scheduler does not need the record
    r = CliRunner().invoke(app, ["inpaint", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "-o",
                                 str(tmp_path / "out.png"), "--model", str(folder), "--device", "cpu", "--quiet",
                                 "--offline", "--steps", "1", "--scheduler", "native"])
    assert r.exit_code == 0, r.output
