"""Open3D's and scipy's warnings go to our logger at debug level, never to stdout or stderr (issue 19, class 9)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest


def test_open3d_and_scipy_noise_become_debug_records(tmp_path, capfd, caplog):
    import open3d as o3d
    from prefpaint_apps.recon3d.quiet import library_noise_to_log
    from scipy.stats import spearmanr

    caplog.set_level(logging.DEBUG, logger="prefpaint_apps")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")  # as a user's interpreter shows them
        with library_noise_to_log():
            o3d.io.read_point_cloud(str(tmp_path / "missing.ply"))  # "[Open3D WARNING] Read PLY failed"
            spearmanr([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])  # scipy's ConstantInputWarning
            print("our own line")  # anything else printed passes through
            warnings.warn("a warning of ours", UserWarning, stacklevel=1)  # and other warnings stay warnings
    out, err = capfd.readouterr()
    assert "Open3D" not in out + err and "ConstantInput" not in out + err, out + err
    assert "our own line" in out
    assert [str(w.message) for w in shown] == ["a warning of ours"]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("[Open3D WARNING] Read PLY failed" in m for m in debug), debug
    assert any("ConstantInputWarning" in m for m in debug), debug


def test_the_recon3d_entry_points_are_quiet():
    from prefpaint_apps.recon3d import check_scene, reconstruct

    for fn in (reconstruct, check_scene):
        assert getattr(fn, "__wrapped__", None) is not None, f"{fn.__name__} does not route library noise"


def test_reward_metrics_of_constant_predictions_warn_nothing(caplog):
    from prefpaint_sdk.reward.train import reward_metrics

    class Data:
        has_scores = True

        def group_pairs(self):
            return [(0, 1)]

    caplog.set_level(logging.DEBUG, logger="prefpaint_sdk")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        m = reward_metrics(np.ones(3, np.float32), Data(), targets=np.array([0.1, 0.5, 0.9], np.float32))
    assert m["spearman"] == 0.0
    assert any("ConstantInputWarning" in r.getMessage() for r in caplog.records), "not routed to the logger"


@pytest.mark.slow
def test_a_clean_recon3d_run_prints_no_library_warnings(tiny_pipeline_dir, tmp_path):
    """The real entry point on the tiny synthetic scene: stdout and stderr hold our lines only."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from _recon3d_fakes import scene
    from prefpaint_apps.recon3d.testing import write_scene

    data = write_scene(scene(3, 160, 120).frames, tmp_path / "scene", "redwood")
    r = subprocess.run([str(Path(sys.executable).with_name("prefpaint")), "recon3d", str(data), "-o", str(tmp_path / "out"),
                        "--model", str(tiny_pipeline_dir), "--views", "2", "--steps", "2", "--depth-model", "none",
                        "--voxel-size", "0.08", "--depth-trunc", "9", "--device", "cpu", "--dtype", "float32", "--offline"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", COLUMNS="2000", PYTHONWARNINGS="default"))
    assert r.returncode == 0, r.stderr
    noise = [ln for ln in (r.stdout + r.stderr).splitlines() if "Open3D" in ln or "Warning" in ln or "warnings.warn" in ln]
    assert not noise, noise
    assert (tmp_path / "out" / "mesh.ply").is_file()
