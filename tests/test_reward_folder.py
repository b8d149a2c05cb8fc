"""Folder scoring: a bad item fails alone, the rest of its batch is still scored, and the CSV is exact."""

import csv
from pathlib import Path

import pytest

from prefpaint_sdk import InvalidInputError, OutputExistsError
from prefpaint_sdk.data import InputPair
from prefpaint_sdk.reward.folder import score_pairs, write_scores_csv
from prefpaint_sdk.testing import write_png_bomb


class _Out:
    def __init__(self, recs):
        self.recs = recs

    def to_records(self):
        return self.recs


class FakeReward:
    """Scores an image by the digits in its name; an image named 'bad' cannot be read."""

    def __init__(self):
        self.calls = []

    def score(self, images, masks=None, normalize=False, batch_size=None):
        images = images if isinstance(images, list) else [images]
        self.calls.append(len(images))
        if any(Path(p).stem == "bad" for p in images):
            raise InvalidInputError("bad is not a readable image")
        return _Out([{"score": float(Path(p).stem[1:]), "bound": None, "trust": None} for p in images])


def _png(path: Path, size=(8, 8)) -> Path:
    from PIL import Image

    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


def test_a_bad_item_fails_alone_and_batches_are_used(tmp_path):
    mask = _png(tmp_path / "m.png")
    pairs = [InputPair(_png(tmp_path / f"{n}.png"), mask, n) for n in ("i1", "i2", "bad", "i4", "i5")]
    model = FakeReward()
    results = list(score_pairs(model, pairs, batch_size=2))
    assert [p.name for p, _ in results] == ["i1", "i2", "bad", "i4", "i5"]
    assert [r["score"] for _, r in results if not isinstance(r, Exception)] == [1.0, 2.0, 4.0, 5.0]
    assert isinstance(results[2][1], InvalidInputError)
    assert model.calls == [2, 2, 1, 1, 1]  # batch of 2, failing batch of 2, its 2 retries, last batch of 1


def test_csv_is_written_atomically_and_never_overwritten(tmp_path):
    rows = [{"image": "a.png", "mask": "m.png", "score": 0.5, "bound": None, "trust": None}]
    write_scores_csv(tmp_path / "s.csv", rows)
    assert list(csv.DictReader((tmp_path / "s.csv").open())) == [
        {"image": "a.png", "mask": "m.png", "score": "0.5", "bound": "", "trust": ""}]
    with pytest.raises(OutputExistsError):
        write_scores_csv(tmp_path / "s.csv", rows)


def test_a_bomb_is_reported_from_its_header_and_the_rest_are_scored(tmp_path):
    from prefpaint_sdk import ImageTooLargeError

    mask = _png(tmp_path / "m.png")
    pairs = [InputPair(_png(tmp_path / "i1.png"), mask, "i1"), InputPair(write_png_bomb(tmp_path / "i2.png"), mask, "i2"),
             InputPair(_png(tmp_path / "i3.png"), mask, "i3"), InputPair(tmp_path / "i4.png", write_png_bomb(tmp_path / "mb.png"), "i4")]
    _png(pairs[3].image)
    model = FakeReward()
    results = list(score_pairs(model, pairs, batch_size=4))
    assert [p.name for p, _ in results] == ["i1", "i2", "i3", "i4"]
    assert [r["score"] for _, r in results if not isinstance(r, Exception)] == [1.0, 3.0]
    assert isinstance(results[1][1], ImageTooLargeError) and "i2.png" in str(results[1][1])
    assert isinstance(results[3][1], ImageTooLargeError) and str(results[3][1]).startswith("mask '")
    assert model.calls == [2]  # the bombs never reached the model, and the others stayed one batch
    rows = [{"image": p.image.name, "mask": p.mask.name, **r} for p, r in results if not isinstance(r, Exception)]
    write_scores_csv(tmp_path / "scores.csv", rows)
    assert [r["image"] for r in csv.DictReader((tmp_path / "scores.csv").open())] == ["i1.png", "i3.png"]


def test_a_bomb_among_real_reward_model_inputs(tmp_path):
    from prefpaint_sdk.testing import tiny_reward_model

    mask = _png(tmp_path / "m.png", (32, 32))
    pairs = [InputPair(_png(tmp_path / f"{n}.png", (32, 32)), mask, n) for n in ("a", "c")]
    pairs.insert(1, InputPair(write_png_bomb(tmp_path / "b.png"), mask, "b"))
    model = tiny_reward_model(seed=0)
    results = list(score_pairs(model, pairs, batch_size=8))
    assert [isinstance(r, Exception) for _, r in results] == [False, True, False]
    alone = model.score(pairs[0].image, masks=mask).to_records()[0]["score"]
    assert abs(results[0][1]["score"] - alone) < 1e-5


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_batch_size_must_be_a_count(bad):
    with pytest.raises(InvalidInputError, match="batch_size must be") as info:
        list(score_pairs(FakeReward(), [], batch_size=bad))
    assert info.value.param == "batch_size"
