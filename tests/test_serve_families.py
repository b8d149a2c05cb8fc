"""``prefpaint serve`` behind every engine family (tiny SDXL and FLUX Fill fixtures), ``response_format=url``
and its file store, and the server's PNG writer."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from _serve_helpers import Gate, make_image, png, square_hole
from fastapi.testclient import TestClient
from PIL import Image

# Sides that are multiples of neither 8 nor 16: the engines work at multiples of theirs, the answer keeps these.
H, W = 50, 38
IMG = make_image(H, W, seed=3)
HOLE = square_hole(H, W)
MASK = png((HOLE * 255).astype(np.uint8))
RGBA_MASK = png(np.dstack([IMG, np.where(HOLE, 0, 255).astype(np.uint8)]))  # OpenAI's: transparent = edit


def files(mask=MASK):
    return {"image": ("x.png", png(IMG), "image/png"), "mask": ("m.png", mask, "image/png")}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def b64_pixels(text: str) -> np.ndarray:
    return pixels(base64.b64decode(text))


def far_from_hole(band: int = 17) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return ~binary_dilation(HOLE, iterations=band)


# ---- every family --------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sdxl", "flux-fill"])
def family_app(request, tiny_family_dir):
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(tiny_family_dir(request.param), device="cpu", dtype="float32")
    with TestClient(create_app(inp, default_steps=2)) as c:
        yield request.param, inp, c


def test_every_family_answers_at_the_input_size_as_a_direct_call_does(family_app):
    family, inp, c = family_app
    m = c.get("/v1/models").json()["data"][0]
    assert m["family"] == family and c.get("/health").json()["family"] == family
    r = c.post("/v1/inpaint", files=files(), data={"n": "2", "seed": "4"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["model"]["family"] == family and j["params"]["family"] == family and j["size"] == [W, H]
    # a request that names no guidance gets the family's default (FLUX Fill 30, SDXL 8), not SD's 7.5
    assert j["params"]["guidance_scale"] == inp.defaults["guidance_scale"]
    direct = inp(IMG, HOLE, num_candidates=2, seed=4, steps=2)
    for b64, ref in zip(j["images"], direct.candidates):
        out = b64_pixels(b64)
        assert out.shape == (H, W, 3)
        assert np.array_equal(out, np.asarray(ref))  # the server computes exactly the direct call
        assert np.array_equal(out[far_from_hole()], IMG[far_from_hole()])
    e = c.post("/v1/images/edits", files=files(RGBA_MASK), data={"prompt": "", "n": "2", "seed": "4"})
    assert e.status_code == 200, e.text
    assert np.array_equal(b64_pixels(e.json()["data"][0]["b64_json"]), b64_pixels(j["images"][0]))
    sized = c.post("/v1/images/edits", files=files(RGBA_MASK), data={"n": "1", "size": "36x44"})
    assert sized.status_code == 200 and b64_pixels(sized.json()["data"][0]["b64_json"]).shape == (44, 36, 3)


def test_a_knob_the_family_lacks_is_a_400_naming_it(family_app):
    family, inp, c = family_app
    knobs = {"negative_prompt": "blurry", "eta": "0.5"}
    for name, value in knobs.items():
        lacks = (name == "eta" and inp.defaults["eta"] is None) or (name == "negative_prompt" and family == "flux-fill")
        if lacks:
            # refused before the queue: with wait=false a queued request would get 202 with a job id
            gate = Gate()
            c.app.state.queue.submit("gate", gate)
            try:
                assert gate.started.wait(10)
                r = c.post("/v1/inpaint?wait=false", files=files(), data={name: value})
                assert r.status_code == 400, r.text
                err = r.json()["error"]
                assert err["param"] == name and family in err["message"] and name.split("_")[0] in err["message"]
                assert c.app.state.queue.busy == 1  # only the gate
            finally:
                gate.release.set()
        else:
            r = c.post("/v1/inpaint", files=files(), data={name: value})
            assert r.status_code == 200, r.text
            assert r.json()["params"][name] == (float(value) if name == "eta" else value)


# ---- response_format=url -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def url_app(tiny_pipeline_dir):
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32")
    with TestClient(create_app(inp, default_steps=2, api_key="k", url_max_files=3, url_ttl_s=600)) as c:
        yield c


AUTH = {"Authorization": "Bearer k"}
NAME = re.compile(r"http://testserver/v1/files/([A-Za-z0-9_-]{32}\.png)")


def test_url_answers_are_served_and_equal_the_b64_answer(url_app):
    c = url_app
    data = {"prompt": "", "n": "2", "seed": "9"}
    u = c.post("/v1/images/edits", files=files(RGBA_MASK), data={**data, "response_format": "url"}, headers=AUTH)
    b = c.post("/v1/images/edits", files=files(RGBA_MASK), data=data, headers=AUTH)
    assert u.status_code == 200 and b.status_code == 200, u.text
    assert [d["seed"] for d in u.json()["data"]] == [9, 10] and "b64_json" not in u.json()["data"][0]
    for du, db in zip(u.json()["data"], b.json()["data"]):
        assert NAME.fullmatch(du["url"]), du["url"]
        got = c.get(du["url"])  # no API key: the unguessable, expiring URL is the capability
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert 0 < int(got.headers["cache-control"].split("max-age=")[1]) <= 600
        assert np.array_equal(pixels(got.content), b64_pixels(db["b64_json"]))
    assert len({d["url"] for d in u.json()["data"]}) == 2


def test_url_files_are_bounded_expire_and_refuse_hostile_names(url_app):
    c = url_app
    store = c.app.state.files
    urls = []
    for seed in range(4):  # url_max_files=3: the first is evicted
        r = c.post("/v1/images/edits", files=files(RGBA_MASK), data={"seed": str(seed), "response_format": "url"},
                   headers=AUTH)
        urls.append(r.json()["data"][0]["url"])
    assert store.stats()["files"] == 3
    assert c.get(urls[0]).status_code == 404 and c.get(urls[-1]).status_code == 200
    real = NAME.fullmatch(urls[-1]).group(1)
    hostile = ["A" * 32 + ".png", real[:-4], real + "/../x", "..%2F..%2Fapp.py", "%2e%2e%2fapp.py",
               "..%2F..%2F..%2Fetc%2Fpasswd", real.replace(".png", ".PNG"), "<script>.png", "x" * 5000 + ".png"]
    for name in hostile:
        r = c.get(f"/v1/files/{name}")
        assert r.status_code == 404, (name, r.status_code)
        assert r.headers["content-type"].startswith("application/json") and "error" in r.json()
    assert c.get("/v1/files/../app.py").status_code == 404
    clock = store.clock
    try:
        store.clock = lambda: clock() + 601  # past url_ttl_s
        gone = c.get(urls[-1])
        assert gone.status_code == 404 and "expired" in gone.json()["error"]["message"]
        assert gone.json()["error"]["code"] == "file_not_found" and store.stats() == {"files": 0, "bytes": 0}
    finally:
        store.clock = clock
    assert c.get("/health").json()["status"] == "ok"


def test_url_answer_over_the_store_limit_is_507_and_settings_are_checked(tiny_inpainter):
    from prefpaint_apps.serve import create_app

    from prefpaint_sdk import InvalidInputError

    with TestClient(create_app(tiny_inpainter, default_steps=1, url_max_mb=1e-4)) as c:  # 104 bytes
        r = c.post("/v1/images/edits", files=files(RGBA_MASK), data={"response_format": "url"})
        assert r.status_code == 507 and r.json()["error"]["param"] == "response_format"
        assert "b64_json" in r.json()["error"]["message"]
        assert c.post("/v1/images/edits", files=files(RGBA_MASK)).status_code == 200
    for kw in (dict(url_ttl_s=0), dict(url_ttl_s=float("nan")), dict(url_max_files=0), dict(url_max_mb=-1)):
        with pytest.raises(InvalidInputError, match=next(iter(kw))):
            create_app(tiny_inpainter, **kw)


def test_file_store_bounds_bytes_and_count():
    from prefpaint_apps.serve.store import FileStore

    t = [0.0]
    s = FileStore(max_files=10, max_bytes=100, ttl_s=5, clock=lambda: t[0])
    a, b = s.put(b"a" * 60), s.put(b"b" * 30)
    assert s.stats() == {"files": 2, "bytes": 90}
    c = s.put(b"c" * 20)  # 110 > 100: the oldest goes
    assert s.get(a) is None and s.get(b)[0] == b"b" * 30 and s.stats() == {"files": 2, "bytes": 50}
    t[0] = 4.0
    assert s.get(c) == (b"c" * 20, pytest.approx(1.0))
    t[0] = 5.0
    assert s.get(c) is None and s.stats() == {"files": 0, "bytes": 0}
    with pytest.raises(ValueError, match="101"):
        s.put(b"x" * 101)


# ---- the PNG writer ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, shape", [("RGB", (50, 38, 3)), ("RGB", (1, 1, 3)), ("RGBA", (7, 300, 4)),
                                         ("L", (33, 17)), ("RGB", (512, 512, 3))])
def test_png_writer_is_lossless_as_pillow_reads_it(mode, shape):
    from prefpaint_apps.serve.png import png_bytes

    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    a[: shape[0] // 2] = np.linspace(0, 255, shape[1], dtype=np.uint8)[:, None] if a.ndim == 3 else 7  # smooth part
    im = Image.fromarray(a, mode)
    data = png_bytes(im)
    back = Image.open(io.BytesIO(data))
    back.load()  # a CRC or zlib error raises here
    assert back.mode == mode and back.size == im.size and np.array_equal(np.asarray(back), a)


def test_png_writer_hands_other_modes_to_pillow():
    from prefpaint_apps.serve.png import png_bytes

    for im in (Image.new("P", (5, 4), 3), Image.new("I;16", (5, 4), 1000), Image.new("1", (9, 3), 1)):
        back = Image.open(io.BytesIO(png_bytes(im)))
        if im.mode == "P":  # Pillow may renumber a palette: compare colours
            back, im = back.convert("RGB"), im.convert("RGB")
        assert np.array_equal(np.asarray(back), np.asarray(im))
