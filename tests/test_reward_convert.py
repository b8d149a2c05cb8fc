"""Official checkpoint import: equivalence with an independent OpenAI-CLIP reference, caching, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reward_reference import make_official_state_dict, reference_score

from prefpaint_sdk.errors import InvalidInputError, ModelNotFoundError, OutputExistsError
from prefpaint_sdk.reward import RewardModel
from prefpaint_sdk.reward import convert as convert_mod
from prefpaint_sdk.reward.convert import convert_official_checkpoint, convert_official_state_dict
from prefpaint_sdk.reward.preprocess import preprocess_images


@pytest.fixture
def official_pt(tmp_path):
    sd = make_official_state_dict(seed=3)
    path = tmp_path / "prefpaintReward.pt"
    torch.save(sd, path)
    return path, sd


def _images(n, size=(45, 37), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def test_converted_model_matches_reference_implementation(official_pt, tmp_path):
    path, sd = official_pt
    convert_official_checkpoint(path, tmp_path / "rm")
    model = RewardModel.from_pretrained(tmp_path / "rm", device="cpu")
    imgs, masked = _images(3, seed=1), _images(3, seed=2)
    px, pm = preprocess_images(imgs, 32), preprocess_images(masked, 32)
    ref_s, ref_z = reference_score(sd, px, pm, vision_heads=2)
    out = model.score(imgs, masked_images=masked)
    assert model.vision_config["num_attention_heads"] == 2 and model.image_size == 32
    torch.testing.assert_close(out.scores.double(), ref_s, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.embeddings.double(), ref_z, atol=1e-5, rtol=0)
    assert ref_s.abs().max() > 1e-2  # the comparison is not between two near-zero vectors


def test_converter_handles_missing_module_prefix_and_rejects_bad_files(tmp_path):
    sd = make_official_state_dict(seed=0, prefix="")
    config, state = convert_official_state_dict(sd)
    assert config["vision_config"]["hidden_size"] == 128 and config["embed_dim"] == 16
    assert "backbone.visual_projection.weight" in state and not any(k.startswith("clip_model") for k in state)
    del sd["mlp.last_layer.weight"]
    with pytest.raises(InvalidInputError, match="mlp.last_layer"):
        convert_official_state_dict(sd)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(InvalidInputError, match="not a readable tensor file") as err:
        convert_official_checkpoint(bad, tmp_path / "out")
    assert "weights_only=False" not in str(err.value) and not (tmp_path / "out").exists()


def test_converter_refuses_to_overwrite(official_pt, tmp_path):
    path, _ = official_pt
    out = tmp_path / "rm"
    convert_official_checkpoint(path, out)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        convert_official_checkpoint(path, out)
    convert_official_checkpoint(path, out, overwrite=True)


def test_default_model_is_downloaded_converted_once_and_cached(official_pt, tmp_path, monkeypatch):
    path, _ = official_pt
    monkeypatch.setenv("PREFPAINT_CACHE", str(tmp_path / "cache"))
    calls = {"download": 0, "convert": 0}

    def fake_download(model_id, filename, *, revision, offline):
        calls["download"] += 1
        assert model_id == "kd5678/prefpaintReward" and filename == "prefpaintReward.pt"
        return path, "abc123"

    real_convert = convert_mod._write_converted  # what writes a conversion into the cache

    def counting_convert(*a, **k):
        calls["convert"] += 1
        return real_convert(*a, **k)

    monkeypatch.setattr(convert_mod, "_download_official", fake_download)
    monkeypatch.setattr(convert_mod, "_download_optional", lambda *a, **k: None)
    monkeypatch.setattr(convert_mod, "_write_converted", counting_convert)
    m1 = RewardModel.from_pretrained(device="cpu", offline=False)
    m2 = RewardModel.from_pretrained("kd5678/prefpaintReward", device="cpu", offline=False)
    assert calls == {"download": 2, "convert": 1}
    assert m1.revision == "abc123" and (tmp_path / "cache" / "converted" / "kd5678--prefpaintReward" / "abc123").is_dir()
    # offline: the converted copy is used without touching the hub at all
    monkeypatch.setattr(convert_mod, "_download_official", lambda *a, **k: pytest.fail("offline must not download"))
    m3 = RewardModel.from_pretrained(device="cpu", offline=True)
    img = _images(1)
    assert torch.equal(m1.score(img, masked_images=img).scores, m3.score(img, masked_images=img).scores)
    assert torch.equal(m2.score(img, masked_images=img).scores, m3.score(img, masked_images=img).scores)


def test_default_model_offline_without_cache_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFPAINT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="convert-reward"):
        RewardModel.from_pretrained(device="cpu", offline=True)


def test_local_pt_file_is_converted_into_the_cache(official_pt, tmp_path, monkeypatch):
    path, _ = official_pt
    monkeypatch.setenv("PREFPAINT_CACHE", str(tmp_path / "cache"))
    m = RewardModel.from_pretrained(path, device="cpu")
    entries = [p.name for p in (tmp_path / "cache" / "converted").iterdir() if not p.name.startswith(".")]
    assert m.embed_dim == 16 and len(entries) == 1 and entries[0].startswith("file-")  # (+ a hidden lock file)
