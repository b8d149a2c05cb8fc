"""The page of ``prefpaint serve`` in a real headless chromium (selenium + Debian's chromedriver).

Open the page, upload an image, draw a stroke on the canvas, run the tiny model, see the candidates with
their scores, download one, and check that its pixels outside the stroke equal the input's.
Set ``PREFPAINT_SCREENSHOT=path.png`` to also save the screenshot the README shows.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from _serve_helpers import live_server, png, served_inpainter
from conftest import skip_unless_ci
from PIL import Image

# The slow tier: a real browser against a live server.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromedriver(chromium) -> str:
    path = shutil.which("chromedriver")
    if not path:
        skip_unless_ci("chromedriver is not installed (bash scripts/test.sh installs Debian's chromium-driver)")
    return path


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("page-rm") / "rm")


def _picture(h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth picture with detail, so a candidate and the input differ visibly."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 2) % 256, (y * 2) % 256, ((x + y) * 3) % 256], -1)
    return rgb.astype(np.uint8)


def test_paint_run_compare_and_download(chromium, chromedriver, tiny_pipeline_dir, rm_dir, tmp_path):
    from prefpaint_apps.serve import create_app
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    picture = _picture()
    (tmp_path / "photo.png").write_bytes(png(picture))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    inp, rm = served_inpainter(tiny_pipeline_dir, rm_dir)
    app = create_app(inp, rm, default_steps=3)
    with live_server(app) as base:
        driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
        try:
            driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
            driver.get(base + "/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: "reward model loaded" in d.find_element(By.ID, "model").text)
            driver.find_element(By.ID, "image-file").send_keys(str(tmp_path / "photo.png"))
            canvas = driver.find_element(By.ID, "mask-canvas")
            wait.until(lambda d: canvas.is_displayed() and canvas.size["width"] > 0)
            driver.execute_script("document.getElementById('brush').value = 40;"
                                  "document.getElementById('brush').dispatchEvent(new Event('input'))")
            w = canvas.size["width"]
            (ActionChains(driver).move_to_element_with_offset(canvas, -w // 6, 0).click_and_hold()
             .move_by_offset(w // 6, 5).move_by_offset(w // 8, -5).release().perform())
            # the mask the page will send: every pixel the brush touched
            alpha = driver.execute_script(
                "const c = document.getElementById('mask-canvas');"
                "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "const out = []; for (let i = 3; i < d.length; i += 4) out.push(d[i] > 0 ? 1 : 0); return out;")
            stroke = np.asarray(alpha, bool).reshape(picture.shape[:2])
            assert 200 < stroke.sum() < stroke.size // 2, stroke.sum()
            driver.find_element(By.ID, "n").clear()
            driver.find_element(By.ID, "n").send_keys("2")
            driver.find_element(By.ID, "seed").send_keys("11")
            driver.find_element(By.ID, "run").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".candidate")) == 2)
            status = driver.find_element(By.ID, "status").text
            assert status.startswith("done"), status
            cards = driver.find_elements(By.CSS_SELECTOR, ".candidate")
            for card in cards:
                facts = card.find_element(By.CSS_SELECTOR, ".facts").text
                assert "reward " in facts and "trust " in facts and "reward n/a" not in facts, facts
            assert "chosen" in cards[0].get_attribute("class")
            # compare with the input: the toggle shows it whole
            cards[0].find_element(By.TAG_NAME, "button").click()
            assert driver.execute_script(
                "return getComputedStyle(document.querySelector('.candidate .before')).clipPath") == "none"
            if os.environ.get("PREFPAINT_SCREENSHOT"):
                cards[0].find_element(By.TAG_NAME, "button").click()
                slider = cards[0].find_element(By.CSS_SELECTOR, "input.reveal")
                driver.execute_script("arguments[0].value = 50; arguments[0].dispatchEvent(new Event('input'))", slider)
                driver.save_screenshot(os.environ["PREFPAINT_SCREENSHOT"])
            link = cards[0].find_element(By.CSS_SELECTOR, "a.download")
            name = link.get_attribute("download")
            seed = cards[0].get_attribute("data-seed")
            assert name == f"prefpaint-seed{seed}-steps3.png"
            link.click()
            target = downloads / name
            deadline = time.time() + 20
            while not target.is_file():
                assert time.time() < deadline, f"no download in {list(downloads.iterdir())}"
                time.sleep(0.1)
            time.sleep(0.2)
            got = np.asarray(Image.open(target).convert("RGB"))
        finally:
            driver.quit()
    from scipy.ndimage import binary_dilation

    assert got.shape == picture.shape
    keep = ~binary_dilation(stroke, iterations=17)  # beyond the 8 px seam
    assert np.array_equal(got[keep], picture[keep])
    assert not np.array_equal(got[stroke], picture[stroke])
