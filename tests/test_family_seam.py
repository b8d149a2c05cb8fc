"""A family is one module: a dummy family registered only in ``prefpaint_sdk.engines`` and
``prefpaint_sdk.testing`` runs through ``inpaint``, ``extend``, ``eval``, ``serve``, ``recon3d`` and ``train align``
with no other edit. Its defaults (3 steps, guidance 2.5) and working size (48 px) are its own, so a copy of another family's
numbers anywhere in the apps shows up as a wrong value here."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from diffusers import StableDiffusionInpaintPipeline
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk.engines.sd import SDInpaintEngine

runner = CliRunner()


class DummyInpaintPipeline(StableDiffusionInpaintPipeline):
    """A pipeline class diffusers does not know (its own name in model_index.json), with defaults of its own in
    its ``__call__``, as a new family's pipeline has: what ``scheduler="auto"`` (native for a base model) uses."""

    def __call__(self, *args, num_inference_steps: int = 3, guidance_scale: float = 2.5, strength: float = 1.0,
                 eta: float = 0.0, **kw):
        return super().__call__(*args, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                strength=strength, eta=eta, **kw)


class DummyEngine(SDInpaintEngine):
    """A 9-channel latent inpainter that reuses SD's DDIM sampling and rollout (as a new family of that kind
    would) and has its own name, pipeline class, defaults and working size."""

    family = "dummy"
    pipeline_class_name = "DummyInpaintPipeline"
    default_steps = 3
    default_guidance = 2.5
    default_strength = 1.0
    native_defaults = dict(steps=3, guidance_scale=2.5, strength=1.0)  # its pipeline's, read without loading
    hub_models = {"nobody/dummy-inpaint": 48}
    load_kwargs = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    @classmethod
    def pipeline_class(cls):
        return DummyInpaintPipeline

    @classmethod
    def read_resolution(cls, configs) -> int:
        return int(configs.value("unet", "sample_size")) * 2 ** (len(configs.value("vae", "block_out_channels")) - 1)


def _build(seed, shape):
    from prefpaint_sdk.testing.pipelines import BUILDERS, fixture_shape

    sd = BUILDERS["sd"](seed, {**fixture_shape("tiny", "sd"), "unet_sample_size": 24})
    return DummyInpaintPipeline(**sd.components, requires_safety_checker=False)


@pytest.fixture
def dummy(monkeypatch, tmp_path_factory):
    """The registration: the engine registries and the fixture builders, nothing else."""
    from prefpaint_sdk import engines
    from prefpaint_sdk.testing import pipelines, save_tiny_inpaint_pipeline

    monkeypatch.setitem(engines.FAMILIES, "dummy", "prefpaint_dummy.engine:DummyEngine")
    monkeypatch.setitem(engines.PIPELINE_FAMILIES, "DummyInpaintPipeline", "dummy")
    monkeypatch.setitem(pipelines.BUILDERS, "dummy", _build)
    monkeypatch.setattr(pipelines, "FAMILIES", pipelines.FAMILIES + ("dummy",))
    monkeypatch.setitem(sys.modules, "prefpaint_dummy.engine", sys.modules[__name__])  # as if installed
    return save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("dummy") / "tiny-dummy", family="dummy")


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


COMMON = ("--device", "cpu", "--dtype", "float32", "--offline", "--quiet")


def test_the_dummy_family_is_known_from_its_config_files(dummy):
    from prefpaint_sdk import Inpainter, model_info

    info = model_info(dummy)
    assert (info.family, info.resolution, info.defaults["steps"], info.defaults["guidance_scale"]) == ("dummy", 48, 3, 2.5)
    assert model_info("nobody/dummy-inpaint", offline=True).family == "dummy"  # a published id, no files here
    inp = Inpainter.from_pretrained(dummy, device="cpu", dtype="float32")
    assert (inp.family, inp.resolution, inp.defaults) == ("dummy", 48, info.defaults)


def test_inpaint_and_extend_through_the_cli(dummy, tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    hole = np.zeros((40, 56), bool)
    hole[10:30, 20:44] = True
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    r = _run("inpaint", tmp_path / "img.png", tmp_path / "mask.png", "-o", tmp_path / "out.png", "--model", dummy,
             "--seed", "1", *COMMON)
    assert r.exit_code == 0, r.output
    params = json.loads((tmp_path / "out.json").read_text())["params"]
    assert (params["family"], params["steps"], params["guidance_scale"]) == ("dummy", 3, 2.5)
    got = np.asarray(Image.open(tmp_path / "out.png"))
    far = np.ones_like(hole)
    far[10 - 9:30 + 9, 20 - 9:44 + 9] = False
    assert np.array_equal(got[far], img[far]) and not np.array_equal(got[hole], img[hole])

    r = _run("extend", tmp_path / "img.png", "--dry-run", "--ratio", "1.5", "--model", dummy, "--offline")
    assert r.exit_code == 0 and "window 48" in r.output, r.output  # its working size, from its configs
    r = _run("extend", tmp_path / "img.png", "-o", tmp_path / "wide.png", "--ratio-x", "1.3", "--model", dummy,
             "--seed", "2", *COMMON)
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "wide.json").read_text())
    assert meta["plan"]["window"] == 48 and meta["params"]["steps"] == 3 and meta["params"]["guidance_scale"] == 2.5


def test_eval_uses_the_familys_own_defaults(dummy, tiny_pipeline_dir, tmp_path):
    from _helpers_eval import write_data

    from prefpaint_sdk.testing import save_tiny_reward_model

    data = write_data(tmp_path / "data", n=2, size=32)
    out = tmp_path / "out"
    r = _run("eval", "--data", data, "--model", dummy, "--baseline", tiny_pipeline_dir, "--reward-model",
             save_tiny_reward_model(tmp_path / "rm"), "--samples", "2", "-o", out, *COMMON)
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["steps"] is None and len(results["cases"]) == 2  # each model's own step count


def test_serve_answers_with_the_familys_defaults(dummy):
    from _serve_helpers import make_image, png, square_hole
    from fastapi.testclient import TestClient
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(dummy, device="cpu", dtype="float32")
    img, hole = make_image(36, 44, seed=1), square_hole(36, 44)
    files = {"image": ("x.png", png(img), "image/png"), "mask": ("m.png", png((hole * 255).astype(np.uint8)), "image/png")}
    with TestClient(create_app(inp)) as c:
        assert c.get("/health").json()["family"] == "dummy"
        r = c.post("/v1/inpaint", files=files, data={"seed": "4"})
        assert r.status_code == 200, r.text
        j = r.json()
    assert j["model"]["family"] == "dummy" and j["params"]["steps"] == 3 and j["params"]["guidance_scale"] == 2.5


def test_recon3d_runs_on_the_dummy_family(dummy, tmp_path):
    from _recon3d_fakes import scene
    from prefpaint_apps.recon3d.testing import write_scene

    root = write_scene(scene(2, 96, 72).frames, tmp_path / "redwood", "redwood")
    out = tmp_path / "out"
    r = _run("recon3d", root, "-o", out, "--model", dummy, "--views", "1", "--depth-model", "none", "--voxel-size",
             "0.1", "--depth-trunc", "9", "--seed", "3", *COMMON)
    assert r.exit_code == 0, r.output
    params = json.dumps(json.loads((out / "metrics.json").read_text())["inpainting"])
    assert "2.5" in params, params  # the family's own guidance


def test_train_align_runs_on_the_dummy_family(dummy, tmp_path):
    """Two iterations through the command line: the family's working size, its trainable module and frozen
    parts, its LoRA and merged exports (a folder of the dummy family again) come from its engine alone."""
    from _helpers_align import make_data

    from prefpaint_sdk import Inpainter, model_info

    data = make_data(tmp_path / "data", n=4)
    out = tmp_path / "run"
    r = _run("train", "align", "--data", data, "--out", out, "--model", dummy, "--reward", "brightness", "--preset",
             "cpu-smoke", "--iterations", "2", "--finetune", "lora", "--set", "resolution=0", "--set", "num_steps=2",
             "--set", "timesteps_per_traj=2", "--set", "prompts_per_iter=2", "--set", "train_batch_size=8",
             "--set", "eval_every=0", "--set", "log_with=none", "--device", "cpu", "--offline")
    assert r.exit_code == 0, r.output
    assert "done: 2 iterations" in r.output
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert len([x for x in lines if "reward_mean" in x]) == 2
    assert json.loads((out / "align_config.json").read_text())["resolution"] == 0  # the family's own 48 px
    assert (out / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert model_info(out / "merged").family == "dummy"
    inp = Inpainter.from_pretrained(out / "merged", device="cpu", dtype="float32")
    assert (inp.family, inp.resolution) == ("dummy", 48)
