"""The server's answer bodies built as bytes (``apps/serve/answers.py``) against FastAPI's default path, and the
per-request work the app no longer repeats."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from _serve_helpers import make_image, png, served_inpainter, square_hole
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from PIL import Image
from prefpaint_apps.serve.answers import B64, b64_png, json_body
from prefpaint_apps.serve.png import png_bytes

# Text a client controls, with everything JSON must escape (and a lookalike of the body's placeholders).
PROMPT = 'a "quoted" \\ back\nslash, \u00e9t\u00e9 \u2028 \U0001f600 \x00 "0123456789abcdef0123456789abcdef:0"'


def images(k: int) -> list[Image.Image]:
    rng = np.random.default_rng(k)
    return [Image.fromarray(rng.integers(0, 256, (24 + i, 20, 3), dtype=np.uint8)) for i in range(k)]


def default_body(obj) -> bytes:
    """What FastAPI sent for a returned dict before: jsonable_encoder, then JSONResponse's json.dumps."""
    return JSONResponse(jsonable_encoder(obj)).body


def inpaint_facts(images_value) -> dict:
    return {"id": "job-1", "created": 1764600000, "images": images_value, "seeds": [7, 8], "scores": [0.25, -1.5],
            "bounds": [0.1, 0.2], "trust": [0.9, 0.8], "chosen": 0, "best_index": 0, "seed": 7, "box": (0, 0, 20, 24),
            "size": [20, 24], "model_id": "m", "revision": None,
            "params": {"prompt": PROMPT, "steps": 4, "guidance_scale": 7.5, "select": "reward", "eta": None},
            "timings": {"total_s": 0.125, "queue_s": 1e-6, "job_s": 0.5}, "model": {"id": "m", "family": "sd"}}


def test_b64_png_is_the_base64_of_the_png_and_keeps_the_pixels():
    im = images(1)[0]
    text = b64_png(im)
    assert isinstance(text, B64) and b"\n" not in text
    assert text == base64.b64encode(png_bytes(im))
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))
    assert np.array_equal(back, np.asarray(im))


def test_an_inpaint_answer_is_byte_equal_to_fastapis_default_body():
    ims = images(2)
    old = inpaint_facts([base64.b64encode(png_bytes(im)).decode("ascii") for im in ims])
    new = inpaint_facts([b64_png(im) for im in ims])
    body = json_body(new)
    assert body == default_body(old)
    parsed = json.loads(body)
    assert parsed == json.loads(default_body(old))
    assert parsed["params"]["prompt"] == PROMPT and parsed["box"] == [0, 0, 20, 24]
    assert [base64.b64decode(s) for s in parsed["images"]] == [png_bytes(im) for im in ims]


def test_an_openai_edits_answer_keeps_every_extra_key():
    ims = images(3)
    scores, bounds, trust = [0.5, 1.5, -0.25], [0.1, 0.3, 0.2], [0.9, 0.5, 0.7]

    def answer(texts):
        data = [{"b64_json": t, "revised_prompt": None, "seed": 40 + k, "score": scores[k], "bound": bounds[k],
                 "trust": trust[k], "chosen": k == 1} for k, t in enumerate(texts)]
        return {"created": 1, "data": data, "model": "m", "chosen": 1, "params": {"prompt": PROMPT},
                "timings": {"job_s": 0.5}}

    old = answer([base64.b64encode(png_bytes(im)).decode("ascii") for im in ims])
    body = json_body(answer([b64_png(im) for im in ims]))
    assert body == default_body(old)
    data = json.loads(body)["data"]
    assert [d["seed"] for d in data] == [40, 41, 42] and [d["chosen"] for d in data] == [False, True, False]
    assert [d["score"] for d in data] == scores and [d["bound"] for d in data] == bounds
    assert [d["trust"] for d in data] == trust and all(d["revised_prompt"] is None for d in data)
    assert [base64.b64decode(d["b64_json"]) for d in data] == [png_bytes(im) for im in ims]


def test_values_json_lacks_go_through_jsonable_encoder_and_nan_is_refused():
    obj = {"files": [Path("out/a.png")], "tags": {"x"}, "image": B64(b"QUJD")}
    assert json.loads(json_body(obj)) == {"files": ["out/a.png"], "tags": ["x"], "image": "QUJD"}
    assert json_body(obj) == default_body({**obj, "image": "QUJD"})
    assert json_body({"a": [1, {"b": None}]}) == default_body({"a": [1, {"b": None}]})
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError):
            json_body({"score": bad, "image": B64(b"QUJD")})
        with pytest.raises(ValueError):  # the default path refused it too
            default_body({"score": bad})


def test_accepted_step_counts_are_checked_once_and_refused_ones_every_time(tiny_pipeline_dir, monkeypatch):
    from prefpaint_apps.serve import create_app

    inp, _ = served_inpainter(tiny_pipeline_dir)
    app = create_app(inp, default_steps=2)
    calls = []
    real = inp.check_steps

    def spy(steps):  # the request's own checks; the job's Inpainter call checks again on the worker, as a direct call
        if threading.current_thread().name != "prefpaint-serve-worker":
            calls.append(steps)
        return real(steps)

    monkeypatch.setattr(inp, "check_steps", spy)
    f = {"image": ("x.png", png(make_image()), "image/png"),
         "mask": ("m.png", png((square_hole() * 255).astype(np.uint8)), "image/png")}
    with TestClient(app) as client:
        for _ in range(2):
            r = client.post("/v1/inpaint", files=f, data={"steps": "2", "seed": "1"})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json"
            assert len(r.json()["images"]) == 1 and r.json()["params"]["steps"] == 2
        for _ in range(2):
            r = client.post("/v1/inpaint", files=f, data={"steps": "5000"})
            assert r.status_code == 400 and r.json()["error"]["param"] == "steps"
    assert calls == [2, 5000, 5000]
