"""Folder scoring: a bad item fails alone, the rest of its batch is still scored, and the CSV is exact."""

import csv
from pathlib import Path

import pytest

from prefpaint_sdk import InputPair, InvalidInputError, OutputExistsError
from prefpaint_sdk.reward.folder import score_pairs, write_scores_csv


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


def test_a_bad_item_fails_alone_and_batches_are_used():
    pairs = [InputPair(Path(f"{n}.png"), Path("m.png"), n) for n in ("i1", "i2", "bad", "i4", "i5")]
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
