"""Reward data readers: official layout, manifests, bad files, split by prompt, metrics, config."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from prefpaint_sdk.errors import ConfigError, DataError
from prefpaint_sdk.reward.config import REWARD_PRESETS, load_reward_config, reward_batch_summary
from prefpaint_sdk.reward.data import RewardData, RewardSample, read_reward_data, split_by_group
from prefpaint_sdk.reward.train import reward_metrics
from prefpaint_sdk.testing import write_png_bomb, write_synthetic_reward_dataset


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    return write_synthetic_reward_dataset(tmp_path_factory.mktemp("syn") / "data", n_prompts=50, seed=0)


def test_official_layout_is_read_with_groups_and_scores(official):
    data = read_reward_data(official)
    labels = json.loads((official / "labels.json").read_text())
    assert len(data.samples) == len(labels) == 150 and data.has_scores and not data.skipped
    s = data.samples[0]
    assert s.group == "p0000" and s.image.name == "p0000_0.png"
    assert s.masked.name == "p0000_mask_color.png" and s.mask.name == "p0000_mask.png"
    assert s.score == labels["p0000_0"][0]
    pairs = data.group_pairs()
    assert len(pairs) == 150  # 3 pairs per prompt, all scores distinct
    assert all(data.samples[b].score > data.samples[w].score and data.samples[b].group == data.samples[w].group
               for b, w in pairs)


def test_split_never_separates_a_prompts_inpaintings(official):
    data = read_reward_data(official)
    train, val, test = split_by_group(data, (0.7, 0.18, 0.12), seed=3)
    groups = [set(d.groups) for d in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(len(d.samples) for d in (train, val, test)) == 150
    assert len(groups[0]) == 35 and len(groups[1]) == 9 and len(groups[2]) == 6
    assert split_by_group(data, (0.7, 0.18, 0.12), seed=3)[2].groups == test.groups  # deterministic
    with pytest.raises(DataError, match="summing to 1"):
        split_by_group(data, (0.5, 0.1, 0.1))


def _corrupt_copy(src, dst, n_bad):
    import shutil

    shutil.copytree(src, dst)
    bad = sorted((dst / "inpaint").glob("*.png"))[:n_bad]
    for p in bad[:-1]:
        p.write_bytes(p.read_bytes()[:40])  # truncated PNG
    bad[-1].unlink()  # one missing file
    return [p.name for p in bad]


def test_bad_files_are_skipped_with_a_counted_warning(official, tmp_path, caplog):
    names = _corrupt_copy(official, tmp_path / "d", 1)
    data = read_reward_data(tmp_path / "d")  # 1 of 150 bad: 0.67% <= 1%
    assert len(data.samples) == 149 and len(data.skipped) == 1
    assert names[0] in caplog.text and "skipped 1 of 150 samples" in caplog.text


def test_more_than_one_percent_bad_is_a_data_error(official, tmp_path):
    names = _corrupt_copy(official, tmp_path / "d", 3)  # 2%
    with pytest.raises(DataError, match=r"3 of 150 samples \(2.0%\).*" + names[0]):
        read_reward_data(tmp_path / "d")
    assert len(read_reward_data(tmp_path / "d", max_bad_fraction=0.05).samples) == 147


def _write_images(root, n):
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / f"im{i}.png")
    Image.fromarray(np.full((24, 24), 255, np.uint8)).save(root / "mask.png")


def test_generic_manifests_jsonl_csv_and_pairs(tmp_path):
    _write_images(tmp_path, 4)
    rows = [{"image": f"im{i}.png", "mask": "mask.png", "score": i, "group": f"g{i // 2}"} for i in range(4)]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = read_reward_data(tmp_path)
    assert [s.score for s in data.samples] == [0, 1, 2, 3] and data.groups == ["g0", "g1"]
    assert data.group_pairs() == [(1, 0), (3, 2)]
    csv_path = tmp_path / "scores.csv"
    csv_path.write_text("image,mask,score\nim0.png,mask.png,1.5\nim1.png,mask.png,2.5\n")
    assert [s.score for s in read_reward_data(csv_path).samples] == [1.5, 2.5]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"better": "im0.png", "worse": "im1.png", "mask": "mask.png"}) + "\n"
                     + json.dumps({"better": "im2.png", "worse": "im0.png", "mask": "mask.png"}))
    pd = read_reward_data(pairs)
    assert len(pd.samples) == 3 and pd.pairs == [(0, 1), (2, 0)] and not pd.has_scores
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "im0.png", "score": 1}))
    with pytest.raises(DataError, match="row 1 has neither 'mask' nor 'masked_image'"):
        read_reward_data(bad)


def test_unknown_layout_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="neither the official layout"):
        read_reward_data(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_reward_data(tmp_path / "nope")


def test_reward_metrics_exact_values():
    data = RewardData([RewardSample(image=f"{i}.png", group=g, score=s)  # type: ignore[arg-type]
                       for i, (g, s) in enumerate([("a", 1.0), ("a", 2.0), ("a", 3.0), ("b", 0.0), ("b", 5.0)])])
    pred = np.array([0.1, 0.3, 0.2, 1.0, 1.0])  # group a: 2 of 3 pairs right; group b: a tie (half)
    targets = np.array([1.0, 2.0, 3.0, 0.0, 5.0])
    m = reward_metrics(pred, data, targets)
    assert m["pairs"] == 4 and m["pairwise_accuracy"] == pytest.approx((2 + 0.5) / 4)
    assert m["mse"] == pytest.approx(np.mean((pred - targets) ** 2))
    from scipy.stats import spearmanr

    assert m["spearman"] == pytest.approx(spearmanr(pred, targets).statistic)


def test_config_presets_toml_and_errors(tmp_path):
    for name in REWARD_PRESETS:
        load_reward_config(name)
    paper = load_reward_config("paper")
    assert (paper.lr, paper.batch_size, paper.freeze_fraction, paper.loss) == (1e-5, 5, 0.7, "regression")
    toml = tmp_path / "c.toml"
    toml.write_text('[reward]\nepochs = 3\nloss = "bradley-terry"\n')
    cfg = load_reward_config("cpu-smoke", toml, {"lr": "0.01"})
    assert (cfg.epochs, cfg.loss, cfg.lr, cfg.init_backbone) == (3, "bradley-terry", 0.01, "random")
    with pytest.raises(ConfigError, match="unknown reward training setting"):
        load_reward_config("paper", overrides={"learning_rate": 1})
    with pytest.raises(ConfigError, match="loss must be one of"):
        load_reward_config("paper", overrides={"loss": "hinge"})
    with pytest.raises(ConfigError, match="unknown preset"):
        load_reward_config("fast")
    s = reward_batch_summary(paper, train_items=12_000, num_processes=4)
    assert s["effective_batch"] == 20 and s["optimizer_steps_per_epoch"] == 600


@pytest.mark.parametrize("text,row", [
    ('{"image": "im0.png", "mask": "mask.png", "score": 1}\n{"image": "im1.png", "mask": "mask.png", "score": NaN}', 2),
    ('{"image": "im0.png", "mask": "mask.png", "score": Infinity}', 1),
    ('{"image": "im0.png", "mask": "mask.png", "score": "-inf"}', 1),
])
def test_a_nan_or_infinite_score_names_the_manifest_and_row(tmp_path, text, row):
    _write_images(tmp_path, 2)
    (tmp_path / "manifest.jsonl").write_text(text)
    with pytest.raises(DataError, match=rf"manifest '.*manifest\.jsonl' row {row} has score .*finite number") as info:
        read_reward_data(tmp_path)
    assert info.value.exit_code == 2
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("image,mask,score\nim0.png,mask.png,1.5\nim1.png,mask.png,nan\n")
    with pytest.raises(DataError, match=r"m\.csv' row 2 has score 'nan'"):
        read_reward_data(csv_path)


def test_a_nan_score_in_official_labels_names_the_label(official, tmp_path):
    import shutil

    shutil.copytree(official, tmp_path / "d")
    labels = json.loads((tmp_path / "d" / "labels.json").read_text())
    labels["p0003_1"] = [float("nan"), 2]
    (tmp_path / "d" / "labels.json").write_text(json.dumps(labels))  # json writes the NaN literal
    with pytest.raises(DataError, match=r"label 'p0003_1' in '.*labels\.json' has score nan"):
        read_reward_data(tmp_path / "d")


def test_bombs_and_mismatched_masks_are_skipped_from_headers(official, tmp_path, caplog):
    import shutil
    import time

    shutil.copytree(official, tmp_path / "d")
    write_png_bomb(tmp_path / "d" / "inpaint" / "p0001_0.png")
    t0 = time.perf_counter()
    data = read_reward_data(tmp_path / "d")  # 1 of 150: within the 1% rule
    assert time.perf_counter() - t0 < 10
    assert len(data.samples) == 149 and data.skipped[0][0].endswith("p0001_0.png")
    assert "over the pixel limit of 200,000,000" in data.skipped[0][1] and "p0001_0.png" in caplog.text
    # a mask of another aspect ratio (training would stretch it) is caught before any model loads
    Image.new("L", (48, 20), 255).save(tmp_path / "d" / "masks" / "p0002_mask.png")
    with pytest.raises(DataError, match=r"4 of 150 samples .*p0002_mask\.png \(a mask of 48x20 for an image of 48x48"):
        read_reward_data(tmp_path / "d")
    # the same aspect ratio at another size is what training resizes: accepted
    Image.new("L", (96, 96), 255).save(tmp_path / "d" / "masks" / "p0002_mask.png")
    assert len(read_reward_data(tmp_path / "d").samples) == 149
