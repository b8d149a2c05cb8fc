"""No pickle is ever loaded: every weights folder that holds only pickles is refused with our own line.

Each pickle here is malicious: unpickling it would create a marker file. The tests check both the line
("X is a pickle file; PrefPaint does not load pickles: convert it to safetensors", never torch's advice to
set ``weights_only=False``) and that the marker never appears.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from prefpaint_sdk.errors import PickleRefusedError

LINE = "is a pickle file; PrefPaint does not load pickles: convert it to safetensors"
ROOT = Path(__file__).resolve().parents[1]


class _Evil:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_pickle(path: Path, marker: Path) -> Path:
    torch.save({"weight": torch.zeros(2), "payload": _Evil(marker)}, path)
    return path


def _assert_refused(err, path: Path, marker: Path):
    msg = str(err.value)
    assert f"'{path}' {LINE}" in msg, msg
    assert "weights_only" not in msg and "\n" not in msg
    assert err.value.exit_code == 2
    assert not marker.exists(), "the pickle was executed"


@pytest.fixture()
def marker(tmp_path):
    return tmp_path / "PWNED"


def test_load_torch_file_refuses_a_malicious_pickle(tmp_path, marker):
    from prefpaint_sdk.files import load_torch_file

    pt = _evil_pickle(tmp_path / "V_inverse.pt", marker)
    with pytest.raises(PickleRefusedError) as err:
        load_torch_file(pt, "V_inverse file", "pass the official V_inverse.pt")
    _assert_refused(err, pt, marker)


def test_official_reward_pt_that_is_malicious_is_refused(tmp_path, marker, monkeypatch):
    from prefpaint_sdk.reward import RewardModel

    monkeypatch.setenv("PREFPAINT_CACHE", str(tmp_path / "cache"))
    pt = _evil_pickle(tmp_path / "prefpaintReward.pt", marker)
    with pytest.raises(PickleRefusedError) as err:
        RewardModel.from_pretrained(pt, device="cpu")
    _assert_refused(err, pt, marker)
    assert not any((tmp_path / "cache" / "converted").glob("file-*"))  # nothing half-converted is cached


def test_reward_folder_with_only_pytorch_model_bin_is_refused(tmp_path, marker):
    from prefpaint_sdk.reward import RewardModel
    from prefpaint_sdk.testing import save_tiny_reward_model

    folder = save_tiny_reward_model(tmp_path / "rm", seed=0)
    (folder / "model.safetensors").unlink()
    binf = _evil_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(PickleRefusedError) as err:
        RewardModel.from_pretrained(folder, device="cpu")
    _assert_refused(err, binf, marker)


def test_pickled_model_safetensors_is_refused(tmp_path, marker):
    # a pickle under the safetensors name is refused as a pickle too, never handed to torch.load
    from prefpaint_sdk.reward import RewardModel
    from prefpaint_sdk.testing import save_tiny_reward_model

    folder = save_tiny_reward_model(tmp_path / "rm", seed=0)
    w = _evil_pickle(folder / "model.safetensors", marker)
    with pytest.raises(PickleRefusedError) as err:
        RewardModel.from_pretrained(folder, device="cpu")
    _assert_refused(err, w, marker)


@pytest.fixture(scope="module")
def pickled_pipeline(tmp_path_factory):
    """A tiny pipeline whose UNet weights exist only as a (malicious) ``diffusion_pytorch_model.bin``."""
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    root = tmp_path_factory.mktemp("pickled")
    folder = save_tiny_inpaint_pipeline(root / "pipe", seed=0)
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    marker = root / "PWNED"
    return folder, _evil_pickle(folder / "unet" / "diffusion_pytorch_model.bin", marker), marker


def test_inpainter_refuses_a_pickle_only_pipeline(pickled_pipeline):
    from prefpaint_sdk import Inpainter

    folder, binf, marker = pickled_pipeline
    with pytest.raises(PickleRefusedError) as err:
        Inpainter.from_pretrained(folder, device="cpu", dtype="float32")
    _assert_refused(err, binf, marker)


def test_aligner_refuses_a_pickle_only_pipeline(pickled_pipeline, tmp_path):
    from _helpers_align import fast_config, make_data

    from prefpaint_sdk.align.trainer import Aligner

    folder, binf, marker = pickled_pipeline
    with pytest.raises(PickleRefusedError) as err:
        Aligner.from_pretrained(folder, "brightness", fast_config(), make_data(tmp_path / "d", n=4), tmp_path / "run",
                                device="cpu")
    _assert_refused(err, binf, marker)
    assert not (tmp_path / "run").exists()


def test_a_pickle_in_an_unused_component_does_not_matter(tmp_path):
    from prefpaint_sdk.state import refuse_pickle_pipeline

    (tmp_path / "safety_checker").mkdir()
    (tmp_path / "safety_checker" / "pytorch_model.bin").write_bytes(b"PK\x03\x04")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"PK\x03\x04")
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    refuse_pickle_pipeline(tmp_path)  # a .bin beside safetensors, and a never-loaded safety checker: fine


def test_depth_model_folder_with_only_a_pickle_is_refused(tmp_path, marker):
    from prefpaint_apps.recon3d.depth import load_depth_estimator

    folder = tmp_path / "depth"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "depth_anything"}')
    binf = _evil_pickle(folder / "pytorch_model.bin", marker)
    with pytest.raises(PickleRefusedError) as err:
        load_depth_estimator(str(folder), device="cpu")
    _assert_refused(err, binf, marker)


def test_reward_init_backbone_folder_with_only_a_pickle_is_refused(tmp_path, marker):
    from prefpaint_sdk.reward.config import RewardTrainConfig
    from prefpaint_sdk.reward.train import _build_model

    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "clip_vision_model"}')
    binf = _evil_pickle(folder / "pytorch_model.bin", marker)
    cfg = RewardTrainConfig().replace(init_backbone=str(folder))
    with pytest.raises(PickleRefusedError) as err:
        _build_model(cfg)
    _assert_refused(err, binf, marker)


# ------------------------------------------------------------------------------------------------
def _sources():
    for top in ("prefpaint_sdk", "cli", "apps"):
        yield from sorted((ROOT / top).rglob("*.py"))


def test_the_only_torch_load_is_the_safe_one():
    calls = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(re.findall(r"(?<!`)torch\.load\(", p.read_text())))}
    assert calls == {"prefpaint_sdk/files/readers.py": 1}
    assert "weights_only=True" in (ROOT / "prefpaint_sdk" / "files" / "readers.py").read_text()


def test_every_library_weights_load_asks_for_safetensors():
    # diffusers/transformers loads of weights name use_safetensors=True; our own from_pretrained (Inpainter,
    # RewardModel, Aligner) are checked by the tests above.
    # Tokenizers and image processors read JSON/text files, never weights.
    # (HpsReward and ImageRewardModel read their weights through reward/weights.py, weights_only or safetensors.)
    ours = re.compile(r"\b(Inpainter|RewardModel|ClipReward|HpsReward|ImageRewardModel|Aligner|cls|pipeline_cls|self|"
                      r"AutoTokenizer|BertTokenizer|CLIPConfig|CLIPImageProcessor|Qwen2VLImageProcessorPil)"
                      r"\.from_pretrained\(|def from_pretrained\(")
    missing = []
    for p in _sources():
        text = p.read_text()
        for m in re.finditer(r"\.from_pretrained\(", text):
            start = text.rfind("\n", 0, m.start()) + 1
            line = text[start:text.find("\n", m.end())]
            if ours.search(line) or line.lstrip().startswith(("#", ">>>", '"', "'")) or "``" in line:
                continue
            call = text[m.start():m.start() + 600]
            if "use_safetensors=True" not in call[:call.find(")\n") + 1 if ")\n" in call else 600]:
                missing.append(f"{p.relative_to(ROOT)}: {line.strip()}")
    assert not missing, missing
    depth = (ROOT / "apps" / "recon3d" / "depth.py").read_text()
    assert '"use_safetensors": True' in depth
