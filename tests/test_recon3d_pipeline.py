"""The whole pipeline with ground-truth fakes: the inpainter fills holes with the true render and the depth
model returns an affine transform of the true disparity, so every output can be checked against truth."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from _recon3d_fakes import GroundTruthDisparity, GroundTruthInpainter, assert_nerfstudio_accepts, nn_dist, psnr, scene
from prefpaint_apps.recon3d import (
    Recon3DConfig,
    backproject,
    covisible_mask,
    fit_scale_shift,
    fuse_tsdf,
    novel_cameras,
    propagate_depth,
    reconstruct,
)
from prefpaint_apps.recon3d.depth import align_depth

from prefpaint_sdk import DataError, OutputExistsError

VOXEL = 0.06
VIEWS = 3


def _cams(sc, views=VIEWS):
    med = float(np.median(np.concatenate([f.depth[f.depth > 0] for f in sc.frames])))
    return [(sc.frames[j].intrinsics, c) for j, c in novel_cameras([f.c2w for f in sc.frames], views, med, 0.12)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    sc = scene(3, 160, 120)
    cams = _cams(sc)
    inp = GroundTruthInpainter(sc, cams)
    out = tmp_path_factory.mktemp("recon") / "out"
    cfg = Recon3DConfig(views=VIEWS, voxel_size=VOXEL, depth_trunc=9.0, num_candidates=2, seed=7, steps=3, fusion_backend="scalable")
    res = reconstruct(sc.scene(), out, cfg, inpainter=inp, depth_estimator=GroundTruthDisparity(sc, cams))
    return sc, cams, inp, res


def test_completed_views_match_ground_truth(run):
    sc, cams, inp, res = run
    from PIL import Image

    assert len(res.views) == VIEWS and all(v.inpainted for v in res.views)
    for v, (k, c2w) in zip(res.views, cams):
        gt_rgb, gt_d = sc.render(k, c2w)
        d = res.out / "views" / f"{v.index:03d}"
        done = np.asarray(Image.open(d / "inpainted.png"))
        mask = np.asarray(Image.open(d / "holes.png")) > 127
        assert (np.asarray(Image.open(d / "valid.png")) == 255).all()  # every pixel holds warped or inpainted content
        depth = np.asarray(Image.open(d / "depth.png")).astype(np.float64) / 1000
        assert 0.01 < mask.mean() < 0.7
        assert psnr(done, gt_rgb) >= 30.0  # warped pixels ≥ 30 dB, filled pixels exact
        np.testing.assert_array_equal(done[mask], gt_rgb[mask])
        # filled depth comes from the fake disparity aligned by the robust fit: true to within mm quantisation
        rel = np.abs(depth[mask] - gt_d[mask]) / gt_d[mask]
        assert np.median(rel) < 0.01, np.median(rel)
        assert v.depth_fill == "monocular" and v.seeds == [7 + v.index, 8 + v.index] and v.best_index == 1
    assert [c["seed"] for c in inp.calls] == [7, 8, 9] and all(c["num_candidates"] == 2 and c["steps"] == 3 for c in inp.calls)


def test_fused_mesh_covers_disoccluded_surfaces(run):
    sc, cams, _, res = run
    # the true surface that only the novel views reveal: pixels no input view sees
    hidden = []
    for k, c2w in cams:
        _, d = sc.render(k, c2w)
        unseen = ~covisible_mask(d, k, c2w, [(f.depth, f.intrinsics, f.c2w) for f in sc.frames]) & (d > 0) & (d < 9.0)
        hidden.append(backproject(d, k, c2w, unseen))
    hidden = np.concatenate(hidden)
    assert len(hidden) > 500
    inputs_only = fuse_tsdf([(f.rgb, f.depth, f.intrinsics, f.c2w) for f in sc.frames], VOXEL, 9.0, backend="scalable").mesh
    def cover(mesh):
        return float((nn_dist(hidden, np.asarray(mesh.vertices)) <= 2 * VOXEL).mean())
    before, after = cover(inputs_only), cover(res.mesh)
    print(f"disoccluded true surface within 2 voxels: inputs only {before:.1%}, with filled views {after:.1%}")
    assert after >= 0.9 and after > before + 0.2


def test_outputs_are_complete_and_loadable(run):
    import open3d as o3d
    import trimesh
    from PIL import Image

    sc, _, _, res = run
    out = res.out
    for name in ("mesh.ply", "mesh.glb", "points.ply", "transforms.json", "metrics.json", "contact_sheet.png", "flythrough.mp4"):
        assert (out / name).is_file(), name
    for i in range(VIEWS):
        assert sorted(p.name for p in (out / "views" / f"{i:03d}").iterdir()) == [
            "depth.png", "holes.png", "inpainted.png", "rgb.png", "valid.png"]
    assert sorted(p.relative_to(out).as_posix() for p in res.files.values()) == sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no stage left beside the output
    m = o3d.io.read_triangle_mesh(str(out / "mesh.ply"))
    assert len(m.triangles) > 1000 and m.has_vertex_colors()
    assert len(o3d.io.read_point_cloud(str(out / "points.ply")).points) > 1000
    g = trimesh.load(out / "mesh.glb", force="mesh")
    assert len(g.faces) == len(m.triangles) and g.visual.vertex_colors.shape[0] == len(g.vertices)
    tf = assert_nerfstudio_accepts(out)
    assert len(tf["frames"]) == len(sc.frames) + VIEWS
    assert all("mask_path" in f for f in tf["frames"])
    for f in tf["frames"]:  # nerfstudio's meaning: non-zero = train on this pixel; inputs and completed views are all content
        assert (np.asarray(Image.open(out / f["mask_path"])) == 255).all(), f["mask_path"]
    holes = [np.asarray(Image.open(out / "views" / f"{i:03d}" / "holes.png")) for i in range(VIEWS)]
    assert all(0 < (h > 0).mean() < 0.7 for h in holes)  # the hole masks, kept as their own files, are partial
    # transforms.json round-trips through our own nerfstudio reader: same poses as the inputs
    from prefpaint_apps.recon3d import load_scene

    back = load_scene(out, "nerfstudio")
    np.testing.assert_allclose(back.frames[0].c2w, sc.frames[0].c2w, atol=1e-9)
    assert back.frames[-1].load_depth().shape == (120, 160)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fusion"]["voxel_size_m"] == VOXEL and metrics["fusion"]["depth_trunc_m"] == 9.0
    assert metrics["check"]["consistent_share"] > 0.7
    assert len(metrics["views"]) == VIEWS and metrics["inpainting"]["model"] == "fake/ground-truth"


def test_refuses_non_empty_output_and_overwrites_when_asked(run, tmp_path):
    sc, _, _, res = run
    cfg = Recon3DConfig(views=1, voxel_size=VOXEL, depth_trunc=9.0, depth_model=None, fusion_backend="scalable")
    before = (res.out / "mesh.ply").stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="is not empty; pass overwrite=True"):
        reconstruct(sc.scene(), res.out, cfg, inpainter=GroundTruthInpainter(sc, _cams(sc, 1)))
    assert (res.out / "mesh.ply").stat().st_mtime_ns == before
    out = tmp_path / "o"
    reconstruct(sc.scene(), out, replace(cfg, views=2), inpainter=GroundTruthInpainter(sc, _cams(sc, 2)))
    (out / "notes.txt").write_text("an old file")
    assert sorted(p.name for p in (out / "views").iterdir()) == ["000", "001"]
    r = reconstruct(sc.scene(), out, replace(cfg, overwrite=True), inpainter=GroundTruthInpainter(sc, _cams(sc, 1)))
    # --overwrite replaces the folder whole: no view, note or temporary file of the earlier run survives
    assert sorted(p.name for p in (out / "views").iterdir()) == ["000"] and not (out / "notes.txt").exists()
    assert r.views[0].depth_fill == "propagated" and not list(out.rglob("*.tmp*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert len(json.loads((out / "transforms.json").read_text())["frames"]) == len(sc.frames) + 1


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_run_leaves_nothing_and_a_rerun_needs_no_overwrite(tmp_path, exc):
    sc = scene(3, 160, 120)
    cfg = Recon3DConfig(views=2, voxel_size=VOXEL, depth_trunc=9.0, depth_model=None, fusion_backend="scalable")

    class Interrupted(GroundTruthInpainter):
        def __call__(self, image, mask, **kw):
            if len(self.calls) == 1:  # the second view: the first one's files are already written
                raise exc("stop")
            return super().__call__(image, mask, **kw)

    out = tmp_path / "out"
    with pytest.raises(exc):
        reconstruct(sc.scene(), out, cfg, inpainter=Interrupted(sc, _cams(sc, 2)))
    assert list(tmp_path.iterdir()) == []  # neither the output folder nor its stage
    res = reconstruct(sc.scene(), out, cfg, inpainter=GroundTruthInpainter(sc, _cams(sc, 2)))
    assert len(res.views) == 2 and (out / "metrics.json").is_file() and (out / "mesh.ply").is_file()


def test_flythrough_is_a_video_of_every_completed_view(run):
    import imageio.v3 as iio
    from PIL import Image

    _, _, _, res = run
    frames = list(iio.imiter(res.out / "flythrough.mp4", plugin="FFMPEG"))
    assert len(frames) == VIEWS and frames[0].shape == (120, 160, 3)
    for i, got in enumerate(frames):  # lossy H.264, but each frame is its own view (not another one)
        errs = [np.abs(got.astype(float) - np.asarray(Image.open(res.out / "views" / f"{j:03d}" / "inpainted.png"), float)).mean()
                for j in range(VIEWS)]
        assert int(np.argmin(errs)) == i and errs[i] < 12, errs
    assert res.metrics["flythrough"] == "flythrough.mp4"


def test_flythrough_falls_back_to_gif_without_ffmpeg(tmp_path, monkeypatch):
    import imageio.v3 as iio
    from prefpaint_apps.recon3d import outputs

    monkeypatch.setattr(outputs, "_ffmpeg_available", lambda: False)
    frames = [np.full((31, 41, 3), 60 * i, np.uint8) for i in range(4)]
    path = outputs.write_flythrough(frames, tmp_path)
    assert path.name == "flythrough.gif"
    got = iio.imread(path)
    assert got.shape[0] == 4 and got.shape[1:3] == (32, 42)  # padded to even sides
    assert [int(g[..., :3].mean()) for g in got] == [0, 60, 120, 180]


def test_single_image_with_injected_depth(tmp_path):
    from PIL import Image

    sc = scene(3, 160, 120)
    f = sc.frames[1]
    Image.fromarray(f.rgb).save(tmp_path / "photo.png")

    class Est:
        kind = "disparity"

        def __call__(self, rgb):
            return 1.0 / np.maximum(f.depth, 1e-3)

    cfg = Recon3DConfig(views=2, fov=float(np.degrees(2 * np.arctan(80 / f.intrinsics.fx))), depth_trunc=30.0, voxel_size=0.05,
                        fusion_backend="scalable")

    class Fill:
        model_id = "fake/flat"

        def __call__(self, image, mask, **kw):
            from types import SimpleNamespace

            a = np.asarray(image).copy()
            a[np.asarray(mask, bool)] = 128
            return SimpleNamespace(image=Image.fromarray(a), seeds=[kw["seed"]], scores=None, best_index=0)

    res = reconstruct(tmp_path / "photo.png", tmp_path / "out", cfg, inpainter=Fill(), depth_estimator=Est())
    assert res.metrics["scene"]["format"] == "single" and len(res.views) == 2
    assert res.metrics["scene"]["median_depth_m"] == pytest.approx(2.0, rel=0.05)  # relative depth scaled to 2 m (median of a subsample)
    assert res.metrics["fusion"]["triangles"] > 1000


def test_robust_scale_shift_fit_ignores_outliers():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (50, 50))
    y = 2.5 * x + 0.3
    y[:10] = 50.0  # 20% gross outliers (a misaligned object)
    a, b = fit_scale_shift(x, y, np.ones_like(x, bool))
    assert a == pytest.approx(2.5, rel=1e-6) and b == pytest.approx(0.3, rel=1e-6)
    depth = 1.0 / (0.4 * x + 0.1)
    out = align_depth(x * 3 + 1, "disparity", np.where(x > 0.5, depth, 0), x > 0.5)
    np.testing.assert_allclose(out, depth, rtol=1e-5)
    with pytest.raises(DataError, match="only 3 known pixels"):
        fit_scale_shift(x, y, np.pad(np.ones((1, 3), bool), ((0, 49), (0, 47))))


def test_propagate_depth_prefers_the_far_side():
    d = np.zeros((20, 30), np.float32)
    d[:, :10] = 1.0  # occluder on the left
    d[:, 20:] = 4.0  # background on the right
    holes = d == 0
    out = propagate_depth(d, holes)
    assert (out[holes] > 0).all()
    assert (out[:, 10:20] == 4.0).all()  # a disocclusion shows what lies behind: the background
    # a hole with only near border pixels still gets filled
    d2 = np.full((10, 10), 2.0, np.float32)
    d2[3:6, 3:6] = 0
    assert (propagate_depth(d2, d2 == 0)[3:6, 3:6] == 2.0).all()


def test_colmap_without_depth_maps_uses_sparse_points_to_scale_monocular_depth(tmp_path):
    from PIL import Image
    from prefpaint_apps.recon3d.testing import write_scene

    sc = scene(3, 160, 120)
    root = write_scene(sc.frames, tmp_path / "cm", "colmap", depth_maps=False, sparse_every=10)
    cams = _cams(sc, 1) + [(f.intrinsics, f.c2w) for f in sc.frames]
    cfg = Recon3DConfig(views=1, voxel_size=VOXEL, depth_trunc=9.0, fusion_backend="scalable")
    res = reconstruct(root, tmp_path / "out", cfg, inpainter=GroundTruthInpainter(sc, cams), depth_estimator=GroundTruthDisparity(sc, cams))
    for i, f in enumerate(sc.frames):
        d = np.asarray(Image.open(res.out / "inputs" / f"{i:05d}_depth.png")).astype(np.float64) / 1000
        rel = np.abs(d - f.depth) / f.depth
        assert np.median(rel) < 0.005, np.median(rel)
    assert res.metrics["fusion"]["triangles"] > 1000


def test_novel_cameras_from_a_trajectory_file(tmp_path):
    from prefpaint_apps.recon3d.testing import write_log

    sc = scene(3, 160, 120)
    poses = [c for _, c in _cams(sc, 2)]
    write_log(tmp_path / "novel.log", poses)
    cfg = Recon3DConfig(trajectory=str(tmp_path / "novel.log"), voxel_size=VOXEL, depth_trunc=9.0, depth_model=None,
                        fusion_backend="scalable")
    res = reconstruct(sc.scene(), tmp_path / "out", cfg, inpainter=GroundTruthInpainter(sc, _cams(sc, 2)))
    assert len(res.views) == 2
    for v, want in zip(res.views, poses):
        np.testing.assert_allclose(np.asarray(v.c2w), want, atol=1e-12)
