"""Preference pairs for Diffusion-DPO from the reward data reader (prefpaint_sdk.reward.data): ranks within a
prompt, modes, margins, pairs manifests, and the bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from prefpaint_sdk.errors import DataError
from prefpaint_sdk.reward.data import read_preference_pairs, read_reward_data


def _official(root, labels: dict, size: int = 8):
    """The official layout with the given labels ({"<imgid>_<k>": [score, rank]})."""
    for sub in ("inpaint", "masks_color", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for key in labels:
        imgid = key.rsplit("_", 1)[0]
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "inpaint" / f"{key}.png")
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(root / "masks_color" / f"{imgid}_mask_color.png")
        Image.fromarray(np.full((size, size), 255, np.uint8)).save(root / "masks" / f"{imgid}_mask.png")
    (root / "labels.json").write_text(json.dumps(labels))
    return root


def _names(data, pairs):
    return sorted((data.samples[b].image.stem, data.samples[w].image.stem) for b, w in pairs)


def test_pairs_follow_ranks_within_each_prompt(tmp_path):
    # a's scores disagree with its ranks on purpose: ranks (1 = best) decide the order
    root = _official(tmp_path / "d", {"a_0": [1.0, 1], "a_1": [5.0, 2], "a_2": [3.0, 3],
                                      "b_0": [2.0, 2], "b_1": [4.0, 1], "c_0": [9.0, 1]})
    data, pairs = read_preference_pairs(root)
    assert _names(data, pairs) == [("a_0", "a_1"), ("a_0", "a_2"), ("a_1", "a_2"), ("b_1", "b_0")]
    assert [s.rank for s in data.samples if s.group == "a"] == [1.0, 2.0, 3.0]
    data, pairs = read_preference_pairs(root, mode="best-worst")
    assert _names(data, pairs) == [("a_0", "a_2"), ("b_1", "b_0")]
    # the winner (by rank) must out-score the loser by min_margin: a_0 - a_1 = -4 and a_0 - a_2 = -2 fail
    data, pairs = read_preference_pairs(root, min_margin=2.0)
    assert _names(data, pairs) == [("a_1", "a_2"), ("b_1", "b_0")]
    with pytest.raises(DataError, match="no preference pair with a score margin of at least 2.5"):
        read_preference_pairs(root, min_margin=2.5)


def test_tied_ranks_give_no_pair_and_bare_scores_order_by_score(tmp_path):
    root = _official(tmp_path / "d", {"a_0": [1.0, 1], "a_1": [2.0, 1], "a_2": [0.5, 2], "b_0": 3.0, "b_1": 1.0})
    data, pairs = read_preference_pairs(root)
    assert _names(data, pairs) == [("a_0", "a_2"), ("a_1", "a_2"), ("b_0", "b_1")]
    assert read_reward_data(root).group_pairs() != []  # train reward still pairs by score


@pytest.mark.parametrize("labels", [{"a_0": [1.0, 1], "b_0": [2.0, 1]},  # one inpainting per prompt
                                    {"a_0": [1.0, 1], "a_1": [2.0, 1]}])  # all ranks equal
def test_no_pair_is_one_clear_data_error(tmp_path, labels):
    root = _official(tmp_path / "d", labels)
    with pytest.raises(DataError, match="gives no preference pair: every prompt has one inpainting or all its ranks"):
        read_preference_pairs(root)


def test_bad_ratings_are_data_errors(tmp_path):
    root = _official(tmp_path / "nan", {"a_0": [1.0, 1], "a_1": [float("nan"), 2]})
    with pytest.raises(DataError, match="label 'a_1' .* has score nan"):
        read_preference_pairs(root)
    root = _official(tmp_path / "nanrank", {"a_0": [1.0, 1], "a_1": [2.0, float("nan")]})
    with pytest.raises(DataError, match="label 'a_1' .* has rank nan"):
        read_preference_pairs(root)
    with pytest.raises(DataError, match="pair mode must be one of all, best-worst"):
        read_preference_pairs(root, mode="worst")


def test_a_missing_file_is_skipped_or_refused(tmp_path):
    root = _official(tmp_path / "d", {"a_0": [1.0, 1], "a_1": [2.0, 2], "a_2": [3.0, 3]})
    (root / "inpaint" / "a_2.png").unlink()
    with pytest.raises(DataError, match=r"1 of 3 samples .*a_2\.png \(missing\)"):
        read_preference_pairs(root)
    data, pairs = read_preference_pairs(root, max_bad_fraction=0.5)
    assert _names(data, pairs) == [("a_0", "a_1")]


def test_a_pairs_manifest_is_read_and_escaping_paths_are_refused(tmp_path):
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "m.png")
    for n in ("x", "y"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{n}.png")
    good = tmp_path / "pairs.jsonl"
    good.write_text(json.dumps({"better": "x.png", "worse": "y.png", "mask": "m.png"}) + "\n")
    data, pairs = read_preference_pairs(good)
    assert _names(data, pairs) == [("x", "y")] and data.samples[0].mask.name == "m.png"
    (tmp_path / "sub").mkdir()
    for value in ("../x.png", str(tmp_path / "x.png")):
        bad = tmp_path / "sub" / "pairs.jsonl"
        bad.write_text(json.dumps({"better": value, "worse": "y.png", "mask": "m.png"}) + "\n")
        with pytest.raises(DataError, match="row 1 names .* outside the manifest's folder"):
            read_preference_pairs(bad)
    with pytest.raises(DataError, match="needs a score for every inpainting"):
        read_preference_pairs(good, min_margin=1.0)
