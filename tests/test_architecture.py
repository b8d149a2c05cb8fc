"""The project's shape: the public API, the import layering, and the packaging list."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import prefpaint_sdk

ROOT = Path(__file__).resolve().parents[1]

# What a user calls (at most 45 names: issue 24); the plumbing app authors build on is prefpaint_sdk.utils.
PUBLIC_API = {
    "Inpainter", "InpaintResult",
    "run_inpaint_job", "run_score_job", "run_generate_dataset",
    "RewardModel", "RewardOutput", "RewardTrainConfig", "train_reward", "convert_official_checkpoint",
    "evaluate", "EvalReport", "EvalCase",
    "load_image", "load_mask", "set_max_pixels",
    "generate_mask", "warp_hole_mask", "outpaint_square_mask", "outpaint_strip_mask", "stroke_mask",
    "Aligner", "AlignConfig", "AlignResult", "load_align_config",
    "DEFAULT_MODEL", "BASE_MODEL", "DEFAULT_REWARD_MODEL", "download_model", "cache_dir", "model_info", "ModelInfo",
    "PrefPaintError", "InvalidInputError", "ModelNotFoundError", "ConfigError", "DataError", "OutputExistsError",
    "MissingDependencyError", "ImageTooLargeError", "PickleRefusedError", "CorruptFileError",
    "__version__",
}
UTILS_API = {
    "check_output_path", "check_output_dir", "atomic_path", "atomic_write_json", "save_image", "sidecar_path",
    "staged_dir", "write_set", "image_writer", "json_writer",
    "check_outputs", "check_image_suffix", "check_stack",  # the apps' validate (issue 24, validate-first)
    "Arg", "Hint", "render", "finite", "positive", "at_least", "check_seed", "bad_value", "require",
    "Box", "check_image_file", "fit_mask_to_image", "feather_alpha", "pair_inputs", "list_images", "find_image",
}


def test_public_api_is_pinned():
    assert set(prefpaint_sdk.__all__) == PUBLIC_API
    assert len(prefpaint_sdk.__all__) <= 45
    for name in prefpaint_sdk.__all__:
        assert getattr(prefpaint_sdk, name) is not None, name


def test_app_authors_namespace_is_pinned():
    import prefpaint_sdk.utils as utils

    assert set(utils.__all__) == UTILS_API
    assert not set(utils.__all__) & set(prefpaint_sdk.__all__)  # each name has one home
    for name in utils.__all__:
        assert getattr(utils, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'atomic'"):
        utils.atomic  # noqa: B018


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, level, at_top) for every import in a file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, 0, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", node.level, id(node) in top))
    return out


def test_apps_use_only_the_public_sdk():
    for path in (ROOT / "apps").rglob("*.py"):
        for module, level, _ in _imports(path):
            if module.startswith("prefpaint_sdk") and level == 0:
                assert module in ("prefpaint_sdk", "prefpaint_sdk.utils"), f"{path.relative_to(ROOT)} imports {module}"
            assert not module.startswith("prefpaint_cli"), path


def test_cli_has_no_heavy_imports_at_module_top():
    heavy = ("torch", "diffusers", "transformers", "open3d", "accelerate", "peft", "kornia", "trimesh", "numpy")
    for path in (ROOT / "cli").rglob("*.py"):
        for module, level, at_top in _imports(path):
            if at_top and level == 0:
                assert module.split(".")[0] not in heavy, f"{path.relative_to(ROOT)} imports {module} at top"


def test_apps_contract_forbids_every_internal_module():
    """The import-linter contract keeping the apps on the two namespaces lists the SDK's modules one by one; a
    module added later must join the list, or the apps could import it unseen."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (apps,) = [c for c in contracts if c["name"] == "Apps import only prefpaint_sdk and prefpaint_sdk.utils"]
    modules = {p.stem if p.suffix == ".py" else p.name for p in (ROOT / "prefpaint_sdk").iterdir()
               if (p.suffix == ".py" or (p / "__init__.py").is_file()) and not p.name.startswith("__")}
    assert {m.removeprefix("prefpaint_sdk.") for m in apps["forbidden_modules"]} == modules - {"utils"}


def test_import_linter_contracts():
    # in this interpreter, not through the lint-imports script, whose shebang may name another environment's
    # Python (a copied virtual environment), which would check that environment's installed code instead
    r = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_package_folder_is_packaged():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    names = {v: k for k, v in cfg["package-dir"].items()}
    found = set()
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT).parts
        if rel[0] in names:
            found.add(".".join((names[rel[0]],) + rel[1:]))
    assert found == listed
