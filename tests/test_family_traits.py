"""Family traits on the engine: a family's preset values live on its engine, and nothing under align/ names one.

* the resolved configs (every preset, every algorithm, SD, SDXL and FLUX Fill) equal those computed by the code
  before the preset values moved onto the engines (``tests/data/align_resolved_presets.json``, dumped from
  commit 4541a5c);
* each engine's ``training_presets`` name real settings and reach ``model_info`` without torch;
* no source file under ``prefpaint_sdk/align/`` names a registered family, its engine module or class, or a
  diffusers pipeline class.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from prefpaint_sdk.align.algorithms import algorithm_names, get_algorithm
from prefpaint_sdk.align.config import PRESETS, AlignConfig, load_config, preset_part
from prefpaint_sdk.align.resolve import resolve_config
from prefpaint_sdk.engines import FAMILIES, PIPELINE_FAMILIES, engine_class, engine_classes

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = json.loads((ROOT / "tests" / "data" / "align_resolved_presets.json").read_text())


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_resolved_config_is_unchanged_by_the_move(key):
    family, preset, algo = key.split("|")
    cls = engine_class(family)
    cfg = resolve_config(family=family, default_algo=cls.default_algo, preset=None if preset == "none" else preset,
                         algo=algo or None)
    assert json.loads(json.dumps(cfg.to_dict(), default=str)) == EXPECTED[key]


def test_the_expected_file_covers_sd_and_flux_fill_cpu_smoke_for_every_algorithm():
    for family in ("sd", "flux-fill"):
        for algo in algorithm_names():
            assert f"{family}|cpu-smoke|{algo}" in EXPECTED
    # the move changed something for FLUX Fill only where its engine says so
    assert EXPECTED["flux-fill|cpu-smoke|grpo"]["num_steps"] == 2 != EXPECTED["sd|cpu-smoke|grpo"]["num_steps"]


@pytest.mark.parametrize("cls", engine_classes(), ids=lambda c: c.family)
def test_training_preset_values_name_real_settings(cls):
    shared = {f.name for f in fields(AlignConfig)}
    for preset, parts in cls.training_presets.items():
        for part, values in parts.items():
            if part == "common":
                assert set(values) <= shared, (preset, set(values) - shared)
                AlignConfig().replace(**values)
            else:
                algo = get_algorithm(part)  # a part is "common" or a registered algorithm
                algo.config_cls().replace(**values)
                assert algo.preset_values(preset, cls.family) == {**algo.presets.get(preset, {}), **values} \
                    or preset not in PRESETS


def test_a_family_defined_preset_is_listed_and_keeps_its_values_for_other_families():
    flux = engine_class("flux-fill").training_presets["flux-fill-lora-80gb"]
    assert PRESETS["flux-fill-lora-80gb"] == flux["common"]
    assert preset_part("flux-fill-lora-80gb", "sd", "grpo") == flux["grpo"]  # the preset's own, on any model
    assert load_config("flux-fill-lora-80gb", family="sd").num_steps == flux["common"]["num_steps"]
    assert preset_part("cpu-smoke", "sd", "grpo") == {}  # SD has no values of its own for cpu-smoke
    assert preset_part("cpu-smoke", "flux-fill", "grpo") == {"timesteps_per_traj": 2}


def test_model_info_carries_the_training_presets_without_torch(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxFillPipeline"}))
    code = ("import sys; from prefpaint_sdk.engines import model_info; i = model_info({!r}); "
            "print(i.training_presets['cpu-smoke']['common']['num_steps'], 'torch' in sys.modules)").format(str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "False"]
    assert load_config("cpu-smoke", family="flux-fill").num_steps == 2


def _forbidden() -> list[tuple[str, re.Pattern]]:
    """What names a family: its registered name (and the module spelling), its engine module and class, the
    diffusers pipeline classes, and the brand words of the family names (flux, qwen, klein, sd, sdxl)."""
    words: set[str] = set()
    for family, target in FAMILIES.items():
        words |= {family, family.replace("-", "_"), target.split(":")[0].rsplit(".", 1)[-1]}
        words |= {p for p in family.split("-") if p not in ("fill", "image", "z", "edit")}
    classes = {*PIPELINE_FAMILIES, *(engine_class(f).pipeline_class_name for f in FAMILIES),
               *(engine_class(f).__name__ for f in FAMILIES)}
    pats = [(w, re.compile(rf"(?<![A-Za-z0-9]){re.escape(w)}(?![A-Za-z0-9])", re.I)) for w in sorted(words)]
    pats += [(c, re.compile(re.escape(c))) for c in sorted(classes)]
    # the brand names as prose writes them: "Stable Diffusion", "Z-Image", "FLUX.1", "FluxFill..."
    pats += [(w, re.compile(w, re.I)) for w in (r"stable[ _-]?diffusion", r"z[ _-]image", r"flux")]
    return pats


def test_nothing_under_align_names_a_family():
    files = sorted((ROOT / "prefpaint_sdk" / "align").rglob("*.py"))
    assert len(files) > 10
    hits = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{n}: {word!r}: {line.strip()}"
                     for word, pat in _forbidden() if pat.search(line)]
    assert not hits, "align/ names a family (move the fact onto the engine):\n" + "\n".join(hits)


def test_the_scan_would_catch_a_family_name():
    text = ['presets["flux-fill"]', "from ..engines.sd import check_ddim_steps", "# ppo for SD/SDXL",
            "FluxFillPipeline", "a Qwen-Image model", "Z-Image turbo"]
    for line in text:
        assert any(p.search(line) for _, p in _forbidden()), line
    for line in ["sdk = 1", "fill the hole", "an image", "seeds", "the trainable module's name"]:
        assert not any(p.search(line) for _, p in _forbidden()), line
