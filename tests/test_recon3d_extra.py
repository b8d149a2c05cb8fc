"""The 3D stack is the [recon3d] extra: a missing open3d or trimesh is one line, exit 2, before any model;
the runtime never imports open3d/trimesh except through ``_deps``, nor the testing helpers."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from _recon3d_fakes import scene
from prefpaint_apps.recon3d import Recon3DConfig, check_inputs
from prefpaint_apps.recon3d.testing import write_scene
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk import MissingDependencyError

APP = Path(__file__).resolve().parents[1] / "apps" / "recon3d"


@pytest.fixture
def redwood(tmp_path):
    return write_scene(scene(3, 160, 120).frames, tmp_path / "rw", "redwood")


@pytest.mark.parametrize("missing", ["open3d", "trimesh"])
def test_missing_extra_is_exit_2_with_the_install_line(redwood, tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import open3d` now raises ImportError
    with pytest.raises(MissingDependencyError, match=rf"'{missing}' is needed for .* run: pip install 'prefpaint\[recon3d\]'") as info:
        check_inputs(redwood, tmp_path / "out", Recon3DConfig(views=1))
    assert info.value.exit_code == 2
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["recon3d", str(redwood), "-o", str(out), "--model", str(tmp_path / "no-model"), "--offline"])
    assert r.exit_code == 2, r.output
    assert "pip install 'prefpaint[recon3d]'" in " ".join(r.output.split()) and "Traceback" not in r.output
    assert not out.exists()


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
            names += ["." * node.level + (node.module + "." if node.module else "") + a.name for a in node.names]
    return names


def test_runtime_imports_the_3d_stack_only_through_deps_and_never_the_testing_helpers():
    runtime = [p for p in APP.rglob("*.py") if "testing" not in p.relative_to(APP).parts]
    assert len(runtime) > 10
    for path in runtime:
        names = _imports(path)
        if path.name != "_deps.py":
            assert not [n for n in names if n.split(".")[0] in ("open3d", "trimesh")], path
        assert not [n for n in names if "testing" in n.split(".")], path
    assert not any(hasattr(__import__(f"prefpaint_apps.recon3d.formats.{m}", fromlist=["x"]), "write")
                   for m in ("colmap", "nerfstudio", "tum", "replica", "scannet", "redwood"))
