"""Safe outputs: atomic files and folders, and no overwriting without permission."""

import pytest

from prefpaint_sdk import OutputExistsError, atomic_write_json
from prefpaint_sdk.files import atomic_dir


def test_atomic_dir_replaces_only_on_success(tmp_path):
    dest = tmp_path / "model"
    with atomic_dir(dest) as tmp:
        (tmp / "weights.safetensors").write_text("v1")
    assert (dest / "weights.safetensors").read_text() == "v1"
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "weights.safetensors").write_text("half")
        raise RuntimeError("interrupted")
    assert (dest / "weights.safetensors").read_text() == "v1"  # the old folder survives a failed write
    with atomic_dir(dest) as tmp:
        (tmp / "other.json").write_text("v2")
    assert sorted(p.name for p in dest.iterdir()) == ["other.json"]  # replaced whole, nothing stale
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folders left behind


def test_json_is_not_overwritten_without_permission(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1}, overwrite=False)
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        atomic_write_json(tmp_path / "a.json", {"x": 2}, overwrite=False)
    atomic_write_json(tmp_path / "a.json", {"x": 2}, overwrite=True)
    assert (tmp_path / "a.json").read_text().strip().endswith("}")
