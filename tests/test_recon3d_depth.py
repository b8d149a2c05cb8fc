"""The transformers depth-estimation path, offline: a tiny random Depth Anything model built in memory and
loaded from a folder, as real checkpoints are; and the offline fallback of the default model."""

from __future__ import annotations

import numpy as np
import pytest
from _recon3d_fakes import scene
from prefpaint_apps.recon3d import Recon3DConfig, load_depth_estimator, reconstruct
from prefpaint_apps.recon3d.testing import write_scene

from prefpaint_sdk import ModelNotFoundError


@pytest.fixture(scope="module")
def tiny_depth_anything(tmp_path_factory):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers import DPTImageProcessorPil as Processor

    path = tmp_path_factory.mktemp("models") / "tiny-depth-anything"
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=14,
                            image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
                              reassemble_hidden_size=32, patch_size=14)
    import torch

    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(cfg).save_pretrained(path)
    Processor(do_resize=True, size={"height": 56, "width": 56}, keep_aspect_ratio=False, ensure_multiple_of=14).save_pretrained(path)
    return path


def test_tiny_depth_anything_through_the_pipeline(tiny_depth_anything):
    est = load_depth_estimator(str(tiny_depth_anything), device="cpu")
    assert est.kind == "disparity"  # Depth Anything "relative" checkpoints predict affine-invariant disparity
    rgb = scene(3, 160, 120).frames[0].rgb[:, :150]  # odd width
    pred = est(rgb)
    assert pred.shape == (120, 150) and np.isfinite(pred).all()


def test_missing_depth_model_names_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError, match="could not be loaded.*depth_model='none'"):
        load_depth_estimator(str(tmp_path / "no-such-model"), device="cpu")


def test_default_depth_model_falls_back_to_propagation_offline(tmp_path, monkeypatch):
    import prefpaint_apps.recon3d.pipeline as pl

    def unavailable(model, device):
        raise ModelNotFoundError(f"depth model '{model}' could not be loaded (offline)")

    monkeypatch.setattr(pl, "load_depth_estimator", unavailable)
    root = write_scene(scene(3, 160, 120).frames, tmp_path / "rw", "redwood")

    class Copy:
        model_id = "fake/copy"

        def __call__(self, image, mask, **kw):
            from types import SimpleNamespace

            return SimpleNamespace(image=image, seeds=[kw["seed"]], scores=None, best_index=0)

    cfg = Recon3DConfig(views=1, voxel_size=0.08, depth_trunc=9.0, depth_model="auto", fusion_backend="scalable")
    res = reconstruct(root, tmp_path / "out", cfg, inpainter=Copy())
    assert res.views[0].depth_fill == "propagated"
    # an explicitly named model that cannot load is an error, not a silent fallback
    cfg.depth_model = "someone/missing-depth-model"
    with pytest.raises(ModelNotFoundError, match="someone/missing-depth-model"):
        reconstruct(root, tmp_path / "out2", cfg, inpainter=Copy())
