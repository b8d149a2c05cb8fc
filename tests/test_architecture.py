"""The project's shape: the public API, the import layering, and the packaging list."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import prefpaint_sdk

ROOT = Path(__file__).resolve().parents[1]

PUBLIC_API = {
    "Inpainter", "InpaintResult", "pair_inputs",
    "run_inpaint_job", "run_score_job", "run_generate_dataset",
    "RewardModel", "RewardOutput", "RewardTrainConfig", "train_reward", "convert_official_checkpoint",
    "evaluate", "EvalReport", "EvalCase",
    "Box", "load_image", "load_mask", "fit_mask_to_image", "feather_alpha", "check_image_file", "set_max_pixels",
    "generate_mask", "warp_hole_mask", "outpaint_square_mask", "outpaint_strip_mask", "stroke_mask",
    "Aligner", "AlignConfig", "AlignResult", "load_align_config",
    "DEFAULT_MODEL", "BASE_MODEL", "DEFAULT_REWARD_MODEL", "download_model", "cache_dir", "model_info", "ModelInfo",
    "check_output_path", "check_output_dir", "atomic_path", "atomic_write_json", "save_image", "sidecar_path",
    "staged_dir", "write_set", "image_writer", "json_writer",
    "Arg", "Hint", "PrefPaintError", "InvalidInputError", "ModelNotFoundError", "ConfigError", "DataError", "OutputExistsError",
    "MissingDependencyError", "ImageTooLargeError", "PickleRefusedError", "CorruptFileError", "require",
    "finite", "positive", "at_least", "check_seed", "bad_value",
    "__version__",
}


def test_public_api_is_pinned():
    assert set(prefpaint_sdk.__all__) == PUBLIC_API
    for name in prefpaint_sdk.__all__:
        assert getattr(prefpaint_sdk, name) is not None, name


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
                assert module == "prefpaint_sdk", f"{path.relative_to(ROOT)} imports internal {module}"
            assert not module.startswith("prefpaint_cli"), path


def test_cli_has_no_heavy_imports_at_module_top():
    heavy = ("torch", "diffusers", "transformers", "open3d", "accelerate", "peft", "kornia", "trimesh", "numpy")
    for path in (ROOT / "cli").rglob("*.py"):
        for module, level, at_top in _imports(path):
            if at_top and level == 0:
                assert module.split(".")[0] not in heavy, f"{path.relative_to(ROOT)} imports {module} at top"


def test_import_linter_contracts():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
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
