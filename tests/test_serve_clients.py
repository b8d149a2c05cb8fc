"""``/v1/images/edits`` as today's OpenAI clients call it (issue 23): image lists, mask_image, output formats,
background, quality, WxH sizes, usage, the JSON body with data: URLs, streaming with partial images, and the
real ``openai`` client against a live server."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from _serve_helpers import live_server, make_image, png, served_inpainter
from fastapi.testclient import TestClient
from PIL import Image

H, W = 48, 64


def hole_of(h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[16:32, 16:40] = True
    return m


IMG = make_image(H, W, seed=3)
HOLE = hole_of()
RGBA_MASK = png(np.dstack([IMG, np.where(HOLE, 0, 255).astype(np.uint8)]))


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("clients-rm") / "rm")


@pytest.fixture(scope="module")
def served(tiny_pipeline_dir, rm_dir):
    return served_inpainter(tiny_pipeline_dir, rm_dir)


@pytest.fixture(scope="module")
def app(served):
    from prefpaint_apps.serve import create_app

    return create_app(served[0], served[1], default_steps=4)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def files(image=None, mask=RGBA_MASK, mask_name="mask"):
    f = [("image", ("x.png", png(IMG) if image is None else image, "image/png"))]
    if mask is not None:
        f.append((mask_name, ("m.png", mask, "image/png")))
    return f


def outside(a: np.ndarray, hole: np.ndarray, margin: int = 12) -> np.ndarray:
    """Pixels farther than the feather band (mask_blur 8) from the hole."""
    from scipy.ndimage import binary_dilation

    far = ~binary_dilation(hole, iterations=margin)
    return a[far]


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_output_formats_compression_and_the_echoed_fields(client):
    answers = {}
    for fmt, comp in (("png", None), ("webp", None), ("webp", 50), ("jpeg", 80)):
        data = {"output_format": fmt, "seed": "3", "n": "2", "quality": "low"}
        if comp is not None:
            data["output_compression"] = str(comp)
        r = client.post("/v1/images/edits", files=files(), data=data)
        assert r.status_code == 200, r.text
        j = r.json()
        assert j["output_format"] == fmt and j["size"] == f"{W}x{H}" and j["quality"] == "low"
        assert j["background"] == "opaque" and len(j["data"]) == 2
        ims = [decode(d["b64_json"]) for d in j["data"]]
        assert [im.format for im in ims] == [{"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}[fmt]] * 2
        answers[(fmt, comp)] = (j, ims)
        u = j["usage"]
        # quality=low: a quarter of the server's 4 steps; 2 candidates, prompt == negative prompt: no CFG pass
        assert j["params"]["steps"] == 1 and u["denoiser_passes"] == 2 and u["images"] == 2
        assert u["pixels"] == 2 * W * H and 0 < u["seconds"] < 120
    png_px = np.asarray(answers[("png", None)][1][0].convert("RGB"))
    lossless = np.asarray(answers[("webp", None)][1][0].convert("RGB"))
    assert np.array_equal(png_px, lossless)  # webp at compression 100 is lossless
    assert np.array_equal(outside(png_px, HOLE), outside(IMG, HOLE))
    lossy = np.asarray(answers[("jpeg", 80)][1][0].convert("RGB")).astype(int)
    assert not np.array_equal(lossy, png_px) and np.abs(lossy - png_px).mean() < 40


def test_quality_maps_to_steps_and_cfg_doubles_the_passes(client):
    steps = {}
    for q in ("low", "medium", "high", "auto"):
        r = client.post("/v1/images/edits", files=files(), data={"quality": q, "prompt": "a cat", "seed": "1"})
        assert r.status_code == 200, r.text
        steps[q] = r.json()["params"]["steps"]
        assert r.json()["usage"]["denoiser_passes"] == 2 * steps[q]  # a prompt: guided, two passes a step
        assert r.json()["quality"] == ("high" if q == "auto" else q)
    assert steps == {"low": 1, "medium": 2, "high": 4, "auto": 4}


def test_transparent_background_keeps_the_inputs_alpha_outside_the_hole(client):
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, :8] = 0  # fully transparent left strip, far from the hole
    alpha[:, 8:12] = 100
    rgba = np.dstack([IMG, alpha])
    rgba[alpha == 0, :3] = 0
    mask = png(np.dstack([IMG, np.where(HOLE, 0, 255).astype(np.uint8)]))
    r = client.post("/v1/images/edits", files=files(image=png(rgba, "RGBA"), mask=mask),
                    data={"background": "transparent", "output_format": "png", "seed": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["background"] == "transparent"
    out = np.asarray(decode(r.json()["data"][0]["b64_json"]))
    assert out.shape == (H, W, 4)
    assert np.array_equal(outside(out, HOLE), outside(rgba, HOLE))  # byte-equal, alpha included
    assert (out[HOLE, 3] == 255).all()
    r = client.post("/v1/images/edits", files=files(), data={"background": "transparent", "output_format": "jpeg"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "background"


def test_mask_image_alias_and_a_wxh_size(client):
    r = client.post("/v1/images/edits", files=files(mask_name="mask_image"), data={"size": "96x64", "seed": "5"})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == "96x64" and decode(r.json()["data"][0]["b64_json"]).size == (96, 64)


def test_json_body_with_data_urls_equals_the_multipart_answer(client):
    url = "data:image/png;base64," + base64.b64encode(png(IMG)).decode()
    murl = "data:image/png;base64," + base64.b64encode(RGBA_MASK).decode()
    body = {"images": [{"image_url": url}], "mask": {"image_url": murl}, "prompt": "", "n": 2, "seed": 9,
            "output_format": "png", "model": "anything"}
    r = client.post("/v1/images/edits", json=body)
    assert r.status_code == 200, r.text
    m = client.post("/v1/images/edits", files=files(), data={"n": "2", "seed": "9"})
    assert [d["b64_json"] for d in r.json()["data"]] == [d["b64_json"] for d in m.json()["data"]]
    r2 = client.post("/v1/images/edits", json={"image": url, "mask_image": murl, "seed": 9, "n": 2})
    assert r2.status_code == 200 and [d["b64_json"] for d in r2.json()["data"]] == [d["b64_json"] for d in m.json()["data"]]


def test_openai_client_list_of_images_webp_and_wxh(app):
    import openai

    with live_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        img = ("in.png", png(IMG), "image/png")
        with pytest.raises(openai.BadRequestError) as err:
            client.images.edit(image=[img, ("ref.png", png(make_image(H, W, 9)), "image/png")],
                               mask=("m.png", RGBA_MASK, "image/png"), prompt="")
        assert "reference" in str(err.value) and err.value.body["param"] == "image"
        res = client.images.edit(image=[img], mask=("m.png", RGBA_MASK, "image/png"), prompt="", n=2,
                                 output_format="webp", size="128x96", quality="medium", extra_body={"seed": 4})
        assert res.output_format == "webp" and res.size == "128x96" and res.quality == "medium"
        assert res.background == "opaque" and res.usage is not None
        for d in res.data:
            im = decode(d.b64_json)
            assert im.format == "WEBP" and im.size == (128, 96)
        assert sum(d.model_extra["chosen"] for d in res.data) == 1


def test_openai_client_stream_with_partial_images(app):
    import openai

    with live_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        stream = client.images.edit(image=("in.png", png(IMG), "image/png"), mask=("m.png", RGBA_MASK, "image/png"),
                                    prompt="", stream=True, partial_images=2, extra_body={"seed": 11, "steps": 6})
        events = list(stream)
        plain = client.images.edit(image=("in.png", png(IMG), "image/png"), mask=("m.png", RGBA_MASK, "image/png"),
                                   prompt="", extra_body={"seed": 11, "steps": 6})
    kinds = [e.type for e in events]
    assert kinds == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    final = np.asarray(decode(events[-1].b64_json).convert("RGB"))
    assert np.array_equal(outside(final, HOLE), outside(IMG, HOLE))
    assert events[-1].b64_json == plain.data[0].b64_json  # previews do not change the result
    for e in events[:2]:
        part = np.asarray(decode(e.b64_json).convert("RGB"))
        assert part.shape == (H, W, 3) and np.array_equal(outside(part, HOLE), outside(IMG, HOLE))
        assert not np.array_equal(part, final)
    assert events[-1].usage.model_extra["denoiser_passes"] == 6 and events[-1].model_extra["chosen"] is True


def test_json_body_can_stream_too(client):
    url = "data:image/png;base64," + base64.b64encode(png(IMG)).decode()
    murl = "data:image/png;base64," + base64.b64encode(RGBA_MASK).decode()
    r = client.post("/v1/images/edits", json={"image": url, "mask": murl, "stream": True, "partial_images": 1,
                                              "seed": 2, "output_format": "jpeg", "output_compression": 70})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    kinds = [line.split(": ", 1)[1] for line in r.text.splitlines() if line.startswith("event: ")]
    assert kinds == ["image_edit.partial_image", "image_edit.completed"]
    assert '"output_format":"jpeg"' in r.text
