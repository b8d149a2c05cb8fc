"""Safe outputs: atomic files and folders, and no overwriting without permission."""

import pytest

from prefpaint_sdk import OutputExistsError
from prefpaint_sdk.files import atomic_dir
from prefpaint_sdk.utils import atomic_write_json


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
    with pytest.raises(OutputExistsError, match="already exists; pass overwrite=True"):
        atomic_write_json(tmp_path / "a.json", {"x": 2}, overwrite=False)
    atomic_write_json(tmp_path / "a.json", {"x": 2}, overwrite=True)
    assert (tmp_path / "a.json").read_text().strip().endswith("}")


def test_umask_modes_keep_executable_bits_and_leave_links(tmp_path):
    import os

    from prefpaint_sdk.files import apply_umask_modes, dir_mode, file_mode

    old = os.umask(0o027)
    try:
        assert (file_mode(), dir_mode()) == (0o640, 0o750)
        (tmp_path / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(tmp_path / "run.sh", 0o700)
        (tmp_path / "data").write_text("x")
        os.chmod(tmp_path / "data", 0o600)
        (tmp_path / "link").symlink_to("/etc/hostname")
        apply_umask_modes(tmp_path)
        assert os.umask(0o027) == 0o027  # reading the umask left it as it was
    finally:
        os.umask(old)
    assert (tmp_path / "run.sh").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o640
    assert tmp_path.stat().st_mode & 0o777 == 0o750


def test_image_suffix_is_checked_up_front(tmp_path):
    from prefpaint_sdk import InvalidInputError
    from prefpaint_sdk.files import check_image_suffix, image_writer

    assert check_image_suffix(tmp_path / "a.JPG").suffix == ".JPG"
    assert check_image_suffix(tmp_path / "noext").name == "noext"  # saved as PNG
    with pytest.raises(InvalidInputError, match=r"unknown suffix '\.pngx'; use \.png, \.jpg or \.webp"):
        image_writer(object(), tmp_path / "a.pngx")  # refused when the writer is made, before any work
