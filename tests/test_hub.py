"""Model references: folders, hub ids, aliases, offline errors that name the fix."""

import logging

import pytest

from prefpaint_sdk import BASE_MODEL, DEFAULT_MODEL, InvalidInputError, ModelNotFoundError
from prefpaint_sdk.hub import is_cached, is_offline, resolve_model


def test_local_folder_is_used_as_is(tmp_path):
    r = resolve_model(tmp_path)
    assert r.source == "local" and r.path == tmp_path.resolve() and r.revision is None


def test_offline_missing_model_names_id_cache_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(DEFAULT_MODEL, offline=True)
    msg = str(err.value)
    assert DEFAULT_MODEL in msg and str(tmp_path / "cache") in msg and "prefpaint download" in msg
    assert err.value.exit_code == 3
    assert not is_cached(DEFAULT_MODEL)


def test_env_var_turns_offline_on(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline() and not is_offline(False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not is_offline()


def test_runwayml_maps_to_its_mirror(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="prefpaint_sdk"), pytest.raises(ModelNotFoundError, match=BASE_MODEL):
        resolve_model("runwayml/stable-diffusion-inpainting", offline=True)
    assert "deleted from the hub" in caplog.text


def test_cached_snapshot_resolves_offline(tmp_path, monkeypatch):
    # A hub cache laid out as huggingface_hub writes it: refs/main -> snapshots/<commit>/...
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--owner--model"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "model_index.json").write_text("{}")
    r = resolve_model("owner/model", offline=True)
    assert r.source == "hub" and r.revision == commit and (r.path / "model_index.json").exists()


def test_malformed_reference(tmp_path):
    with pytest.raises(InvalidInputError, match="neither an existing folder nor a hub id"):
        resolve_model("not a model!")
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is a file"):
        resolve_model(f)
