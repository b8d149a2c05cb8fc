"""The rating loop: the page in headless chromium (selenium), the import of raters' exports, and a reward trained
on the result."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from prefpaint_apps.rate import import_ratings, scan_dataset, write_rating_page
from typer.testing import CliRunner

from prefpaint_sdk import DataError, InvalidInputError, OutputExistsError

runner = CliRunner()


def _app():
    from prefpaint_cli.main import app

    return app


def _dataset(root: Path, n_prompts: int = 5, per_prompt: int = 2) -> Path:
    from prefpaint_sdk.testing import write_synthetic_reward_dataset

    write_synthetic_reward_dataset(root, n_prompts=n_prompts, per_prompt=per_prompt, size=48)
    (root / "labels.json").unlink()  # unrated: the labels are what the rating loop makes
    return root


def _export(path: Path, rater: str, ratings: dict, dataset: str | None = None) -> Path:
    path.write_text(json.dumps({"format": "prefpaint-ratings", "version": 1, "dataset": dataset, "rater": rater,
                                "ratings": ratings}))
    return path


# ---------------------------------------------------------------------------------------------- merge
def test_import_combines_criteria_averages_raters_ranks_and_reports_agreement(tmp_path):
    data = _dataset(tmp_path / "data", n_prompts=2, per_prompt=3)
    a = _export(tmp_path / "a.json", "alice", {
        "p0000_0": {"structure": 7, "texture": 7, "overall": 7},  # 7.0
        "p0000_1": {"structure": 0, "texture": 0, "overall": 1},  # 0.7
        "p0000_2": {"structure": 4, "texture": 2, "overall": 5},  # 4.4
        "p0001_0": {"structure": 3, "texture": 3},  # partial: left out
    })
    b = _export(tmp_path / "b.json", "bob", {
        "p0000_0": {"structure": 5, "texture": 5, "overall": 5},  # 5.0
        "p0000_1": {"structure": 1, "texture": 1, "overall": 2},  # 1.7
        "p0000_2": {"structure": 6, "texture": 6, "overall": 6},  # 6.0 (bob orders 0 and 2 the other way)
        "p0001_0": {"structure": 2, "texture": 2, "overall": 2},
    })
    rep = import_ratings(data, [a, b])
    labels = json.loads((data / "labels.json").read_text())
    assert labels == {"p0000_0": [6.0, 1], "p0000_1": [1.2, 3], "p0000_2": [5.2, 2], "p0001_0": [2.0, 1]}
    assert rep.raters == ["alice", "bob"] and rep.labelled == 4 and rep.unrated == 2
    (pair,) = rep.pairs
    assert pair.common == 3 and pair.order_agreement == pytest.approx(2 / 3)
    assert pair.mean_abs_diff == pytest.approx((2.0 + 1.0 + 1.6) / 3)
    assert any("partly rated" in w for w in rep.warnings)
    from prefpaint_sdk.reward import read_reward_data

    assert len(read_reward_data(data).samples) == 4  # the layout train reward reads


@pytest.mark.parametrize("content, match", [
    ({"format": "other"}, "not a ratings export"),
    ({"format": "prefpaint-ratings", "ratings": {"zzz_0": {"structure": 1, "texture": 1, "overall": 1}}}, "zzz_0"),
    ({"format": "prefpaint-ratings", "ratings": {"p0000_0": {"structure": 8, "texture": 1, "overall": 1}}},
     "from 0 to 7"),
    ({"format": "prefpaint-ratings", "ratings": {"p0000_0": {"structure": 1.5, "texture": 1, "overall": 1}}},
     "from 0 to 7"),
    ('{"format": "prefpaint-ratings", "ratings": {"p0000_0": {"structure": NaN}}}', "NaN is not JSON"),
    ({"format": "prefpaint-ratings", "ratings": {}}, "no inpainting is fully rated"),
])
def test_bad_exports_are_refused(tmp_path, content, match):
    data = _dataset(tmp_path / "data", n_prompts=1)
    f = tmp_path / "r.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError, match=match):
        import_ratings(data, [f])
    assert not (data / "labels.json").exists()


def test_labels_are_not_overwritten_and_a_second_top_level_json_is_refused(tmp_path):
    data = _dataset(tmp_path / "data", n_prompts=1)
    f = _export(tmp_path / "r.json", "r", {"p0000_0": {"structure": 1, "texture": 1, "overall": 1}})
    import_ratings(data, [f])
    with pytest.raises(OutputExistsError, match="labels.json"):
        import_ratings(data, [f])
    import_ratings(data, [f], overwrite=True)
    (data / "stray.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="stray.json.*exactly one labels file"):
        import_ratings(data, [f], overwrite=True)


def test_page_is_self_contained_and_escapes_names(tmp_path):
    data = _dataset(tmp_path / "data", n_prompts=1)
    page = write_rating_page(data)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched from the network
    assert "inpaint/p0000_0.png" in text and "data:image/png;base64," in text
    assert scan_dataset(data).dataset_id in text


# ---------------------------------------------------------------------------------------------- browser
def _driver(chromium: str, chromedriver: str, downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    return webdriver.Chrome(options=opts, service=Service(chromedriver))


@pytest.mark.slow  # a real browser, then a reward trained on the ratings
def test_rate_two_images_in_the_browser_export_import_and_train(tmp_path, chromium, chromedriver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    data = _dataset(tmp_path / "data")
    r = runner.invoke(_app(), ["rate", str(data)], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _driver(chromium, chromedriver, downloads)
    try:
        driver.get((data / "rate.html").as_uri())
        cands = driver.find_elements(By.CSS_SELECTOR, "figure.cand")
        assert [c.get_attribute("data-key") for c in cands] == ["p0000_0", "p0000_1"]
        loaded = driver.execute_script(
            "return [...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert loaded and all(loaded), "an image (inpainting, prompt or outline) did not load from file://"
        driver.find_element(By.ID, "rater").send_keys("alice")
        driver.find_element(By.TAG_NAME, "body").click()
        keys = ActionChains(driver)
        keys.send_keys("5").send_keys("6").send_keys("7").perform()  # p0000_0: structure, texture, overall
        cands = driver.find_elements(By.CSS_SELECTOR, "figure.cand")
        cands[1].find_element(By.CSS_SELECTOR, '[data-crit="structure"] button[data-value="3"]').click()
        ActionChains(driver).send_keys(Keys.ARROW_DOWN).send_keys("2").send_keys("1").perform()
        assert driver.find_element(By.ID, "pos").text == "2 / 5"  # the last row moved on to the next prompt
        # Progress survives a reload (localStorage). Chromium commits a page's localStorage to its storage service
        # asynchronously, and a reload within milliseconds under load (2 busy cores) once read it before the commit:
        # give it the moment a person's reload always has, then wait for the page to show it.
        time.sleep(1.0)
        driver.refresh()
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "progress").text != "")
        assert driver.find_element(By.ID, "progress").text == "2 / 10 rated"
        assert driver.find_element(By.ID, "rater").get_attribute("value") == "alice"
        ActionChains(driver).send_keys(Keys.ARROW_LEFT).perform()
        on = driver.find_elements(By.CSS_SELECTOR, 'figure.cand[data-key="p0000_1"] button.on')
        assert [b.text for b in on] == ["3", "2", "1"]
        driver.find_element(By.ID, "export").click()
        deadline = time.time() + 20
        while time.time() < deadline and not list(downloads.glob("ratings-alice.json")):
            time.sleep(0.1)
    finally:
        driver.quit()
    exported = downloads / "ratings-alice.json"
    assert exported.is_file(), f"no download: {os.listdir(downloads)}"
    got = json.loads(exported.read_text())
    assert got["rater"] == "alice" and got["ratings"] == {
        "p0000_0": {"structure": 5, "texture": 6, "overall": 7}, "p0000_1": {"structure": 3, "texture": 2, "overall": 1}}

    # a second rater who rated everything (written by hand), then the import and one epoch of reward training
    ds = scan_dataset(data)
    bob = _export(tmp_path / "bob.json", "bob", {k: {"structure": i % 8, "texture": (i + 1) % 8, "overall": (3 * i) % 8}
                                                 for i, k in enumerate(ds.keys)}, ds.dataset_id)
    r = runner.invoke(_app(), ["rate", str(data), "--import", str(exported), str(bob)], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert "10 inpaintings of 5 prompts from 2 raters (alice, bob)" in r.stderr
    assert "agreement alice vs bob: 2 in common" in r.stderr
    labels = json.loads((data / "labels.json").read_text())
    assert labels["p0000_0"][0] == pytest.approx((6.55 + 0.15 * 0 + 0.15 * 1 + 0.7 * 0) / 2)
    r = runner.invoke(_app(), ["train", "reward", "--data", str(data), "--out", str(tmp_path / "run"), "--preset",
                               "cpu-smoke", "--epochs", "1", "--batch-size", "4", "-q"], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "model" / "config.json").is_file()
