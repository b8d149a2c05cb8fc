"""The evaluation cache: keyed by what the models are, and a corrupt entry is recomputed, never trusted."""

import json
import logging
import os

import numpy as np
import pytest
from _helpers_eval import FakeInpainter, FakeScorer, write_data
from PIL import Image

from prefpaint_sdk.errors import ConfigError, CorruptFileError
from prefpaint_sdk.evaluation import evaluate
from prefpaint_sdk.evaluation.identity import folder_fingerprint, model_key


def _run(tmp_path, model, data, **kw):
    kw.setdefault("samples", (1, 2))
    kw.setdefault("write_report", False)
    return evaluate(model, FakeInpainter(0, "B"), FakeScorer(), data, out_dir=tmp_path / "out", steps=1, **kw)


def _pure(report):
    return [{k: v for k, v in c.items() if k != "seconds"} for c in report.cases]


# ------------------------------------------------------------------------------------------------
# Stale evaluations


def test_folder_fingerprint_follows_bytes_not_size_or_name(tmp_path):
    root = tmp_path / "m"
    (root / "unet").mkdir(parents=True)
    w = root / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(b"A" * 1000)
    (root / "model_index.json").write_text("{}")
    (root / "junk.bin").write_bytes(b"ignored pickle")
    first = folder_fingerprint(root)
    (root / "junk.bin").write_bytes(b"other")  # not a weight or config file: no effect
    assert folder_fingerprint(root) == first
    w.write_bytes(b"A" * 999 + b"B")  # same size, one byte changed
    second = folder_fingerprint(root)
    assert second != first
    # The per-file memo is trusted only for the same (path, size, mtime_ns): a stale memo entry is ignored.
    memo = {str(w.resolve()): {"size": 1000, "mtime_ns": 1, "sha256": "0" * 64}}
    assert folder_fingerprint(root, memo) == second
    assert memo[str(w.resolve())]["mtime_ns"] == w.stat().st_mtime_ns


def test_model_key_is_hub_commit_or_weights():
    class Hub:
        model_id, revision = "org/model", "abc123"

    class Named:
        model_id = "fake"

    assert model_key(Hub()) == "org/model@abc123"
    assert model_key(Named()) == "fake"


def test_retrained_local_model_never_reuses_old_samples(tiny_pipeline_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from prefpaint_sdk import Inpainter

    folder = tmp_path / "runs" / "x" / "merged"
    shutil.copytree(tiny_pipeline_dir, folder)
    data = write_data(tmp_path / "data", n=1, size=32, masks=False)
    kw = dict(samples=(1,), out_dir=tmp_path / "eval", steps=1, masks="strokes", write_report=False)

    def run(**more):
        model = Inpainter.from_pretrained(folder, device="cpu", dtype="float32")
        return evaluate(model, FakeInpainter(0, "B"), FakeScorer(), data, **kw, **more)

    first = run()
    sample = tmp_path / "eval" / first.cases[0]["model"]["files"][0]
    cache = tmp_path / "eval" / "cache" / f"{first.cases[0]['name']}.json"
    old_png, old_entry = sample.read_bytes(), cache.stat().st_mtime_ns
    assert json.loads((tmp_path / "eval" / "fingerprints.json").read_text())  # digests memoised beside the cache

    # The same weights: the cache is reused (nothing recomputed).
    assert _pure(run()) == _pure(first) and cache.stat().st_mtime_ns == old_entry

    # "Retrain": same file, same size, other values.
    w = folder / "unet" / "diffusion_pytorch_model.safetensors"
    size = w.stat().st_size
    tensors = load_file(str(w))
    key = next(k for k in sorted(tensors) if k.endswith("conv_out.bias"))
    tensors[key] = tensors[key] + 0.5
    save_file(tensors, str(w), metadata={"format": "pt"})
    assert w.stat().st_size == size

    with pytest.raises(ConfigError, match=r"other settings \(model: .*merged#sha256:"):
        run()
    fresh = run(overwrite=True)
    assert fresh.cases[0]["model"]["scores"] != first.cases[0]["model"]["scores"]
    assert sample.read_bytes() != old_png


# ------------------------------------------------------------------------------------------------
# Corrupt cache entries: a cache miss with a warning naming the file; the case is computed again.


def test_corrupt_cache_entries_are_recomputed_with_a_warning(tmp_path, caplog):
    data = write_data(tmp_path / "data", n=4)
    first = _run(tmp_path, FakeInpainter(5, "A"), data)
    cache = tmp_path / "out" / "cache"
    (cache / "img00.json").write_bytes(b"")                                    # empty
    (cache / "img01.json").write_text(json.dumps([1, 2, 3]))                   # wrong type
    text = (cache / "img02.json").read_text()
    (cache / "img02.json").write_text(text[: len(text) // 2])                  # truncated JSON
    rec3 = json.loads((cache / "img03.json").read_text())
    png = tmp_path / "out" / rec3["model"]["files"][1]
    png.write_bytes(png.read_bytes()[:-20])                                    # truncated image

    model = FakeInpainter(5, "A")
    with caplog.at_level(logging.WARNING, logger="prefpaint_sdk.evaluation.run"):
        again = _run(tmp_path, model, data)
    assert sorted(seed for seed, _ in model.calls) == sorted(c["seed"] for c in first.cases)  # all four again
    assert _pure(again) == _pure(first)  # reproducible from the seeds: the same records
    for name in ("img00", "img01", "img02"):
        assert any(f"{cache / name}.json" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
        assert json.loads((cache / f"{name}.json").read_text())["name"] == name
    assert any(str(png) in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)
    Image.open(png).load()  # rewritten whole

    # A score that is not a number is corrupt too.
    rec = json.loads((cache / "img00.json").read_text())
    rec["model"]["scores"][0] = "NaN"
    (cache / "img00.json").write_text(json.dumps(rec))
    model = FakeInpainter(5, "A")
    assert _pure(_run(tmp_path, model, data)) == _pure(first) and len(model.calls) == 1


def test_corrupt_eval_config_is_named_and_overwrite_discards_it(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    _run(tmp_path, FakeInpainter(5, "A"), data, write_report=True)
    config = tmp_path / "out" / "eval_config.json"
    config.write_text('{"protocol": 2, "mod')
    with pytest.raises(CorruptFileError, match=r"eval_config\.json' is not a readable evaluation config.*pass overwrite=True"):
        _run(tmp_path, FakeInpainter(5, "A"), data)
    config.write_text("[]")
    with pytest.raises(CorruptFileError, match="JSON list"):
        _run(tmp_path, FakeInpainter(5, "A"), data)
    model = FakeInpainter(5, "A")
    rep = _run(tmp_path, model, data, overwrite=True)
    assert len(model.calls) == 2 and len(rep.cases) == 2  # nothing of the unknown run was reused
    assert json.loads(config.read_text())["protocol"] == 2
    assert not (tmp_path / "out" / "results.json").exists()  # the old run's results went with it


def test_case_outputs_and_report_are_whole_sets_with_umask_modes(tmp_path):
    data = write_data(tmp_path / "data", n=2)
    old = os.umask(0o022)
    try:
        rep = _run(tmp_path, FakeInpainter(5, "A"), data, write_report=True)
    finally:
        os.umask(old)
    out = tmp_path / "out"
    for name in ("results.json", "results.csv", "report.html", "contact_sheet.png", "cache/img00.json",
                 "images/img00/input.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
    assert (out / "images" / "img00").stat().st_mode & 0o777 == 0o755
    # Strict JSON: a parser that refuses NaN/Infinity reads every JSON file.
    strict = dict(parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    for p in [out / "results.json", out / "eval_config.json", *sorted((out / "cache").glob("*.json"))]:
        json.loads(p.read_text(), **strict)
    assert not list(out.rglob("*.tmp*")) and len(rep.cases) == 2


def test_a_nan_reward_skips_its_case_and_keeps_json_strict(tmp_path):
    class NanOnDark(FakeScorer):
        def score(self, images, masks=None, masked_images=None, batch_size=16):
            out = super().score(images, masks, masked_images, batch_size)
            dark = np.array([np.asarray(im)[0, 0].sum() == 0 for im in images])
            out.scores = np.where(dark, np.nan, out.scores)
            return out

    data = write_data(tmp_path / "data", n=3)
    dark = np.zeros((32, 32, 3), np.uint8)
    Image.fromarray(dark).save(data / "images" / "img01.png")
    rep = evaluate(FakeInpainter(200, "A"), FakeInpainter(200, "B"), NanOnDark(), data, samples=(1,),
                   out_dir=tmp_path / "out", steps=1)
    assert [f["name"] for f in rep.failures] == ["img01"] and "finite" in rep.failures[0]["error"]
    assert not (tmp_path / "out" / "cache" / "img01.json").exists()
    assert not (tmp_path / "out" / "images" / "img01").exists()  # no partial output set for the skipped case
    json.loads((tmp_path / "out" / "results.json").read_text(), parse_constant=lambda c: 1 / 0)
