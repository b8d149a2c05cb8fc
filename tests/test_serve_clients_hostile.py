"""Hostile requests to the fields of OpenAI's current edits contract and to several served models (issue 23), at
the HTTP level: data: URLs that lie or are huge, other URL schemes (nothing is fetched), 17 images,
partial_images=9, an unknown model or field; a stream whose client goes away stops its job; two models side
by side, each with its own queue."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import numpy as np
import pytest
from _serve_helpers import Gate, live_server, make_image, png
from fastapi.testclient import TestClient
from PIL import Image

H, W = 48, 64
IMG = make_image(H, W, seed=3)
HOLE = np.zeros((H, W), bool)
HOLE[16:32, 16:40] = True
RGBA_MASK = png(np.dstack([IMG, np.where(HOLE, 0, 255).astype(np.uint8)]))
PNG = png(IMG)


def jpeg(a) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG")
    return buf.getvalue()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def two(tiny_pipeline_dir, tmp_path_factory):
    """Two models from different weights, "a" (the session's tiny pipeline) and "b" (another seed)."""
    from prefpaint_sdk import Inpainter
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    other = save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("models-b") / "tiny-b", seed=1)
    return {"a": Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32"),
            "b": Inpainter.from_pretrained(other, device="cpu", dtype="float32")}


@pytest.fixture(scope="module")
def app(two):
    from prefpaint_apps.serve import create_app

    return create_app(two, default_steps=2, max_upload_mb=0.5, max_queue=2)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


MP = [("image", ("x.png", PNG, "image/png")), ("mask", ("m.png", RGBA_MASK, "image/png"))]

# (id, multipart files or None, form data or JSON body, status, param, words in the message)
ROWS = [
    ("json-lies-png-is-jpeg", None, {"images": [{"image_url": data_url(jpeg(IMG))}]}, 415, "images", "JPEG"),
    ("json-lies-html-type", None, {"image": data_url(PNG, "text/html")}, 415, "image", "text/html"),
    ("json-lies-html-content", None, {"image": data_url(b"<html><script>alert(1)</script></html>")}, 415,
     "image", "not an image"),
    ("json-huge", None, {"image": "data:image/png;base64," + "A" * 600_000}, 413, None, "upload limit"),
    ("json-not-base64", None, {"image": "data:image/png;base64,***"}, 400, "image", "base64"),
    ("json-plain-data", None, {"image": "data:image/png,rawbytes"}, 400, "image", "base64"),
    ("json-https", None, {"images": [{"image_url": "https://example.com/a.png"}]}, 400, "images", "fetches nothing"),
    ("json-file", None, {"image": "file:///etc/passwd"}, 400, "image", "fetches nothing"),
    ("json-ftp", None, {"mask": {"image_url": "ftp://example.com/m.png"}, "image": data_url(PNG)}, 400, "mask",
     "fetches nothing"),
    ("json-gopher", None, {"image": "gopher://127.0.0.1:6379/_FLUSHALL"}, 400, "image", "fetches nothing"),
    ("json-javascript", None, {"image": "javascript:alert(1)"}, 400, "image", "fetches nothing"),
    ("json-schemeless", None, {"image": "//evil.example/a.png"}, 400, "image", "no scheme"),
    ("json-file-id", None, {"images": [{"file_id": "file-123"}]}, 400, "images", "file_id"),
    ("json-nested-n", None, {"image": data_url(PNG), "n": {"$gt": 1}}, 422, "n", "string, number or boolean"),
    ("json-not-object", None, ["image"], 400, None, "object"),
    ("json-unknown-field", None, {"image": data_url(PNG), "input_fidelity": "high"}, 400, "input_fidelity",
     "unknown field"),
    ("17-images", [("image[]", (f"{k}.png", PNG, "image/png")) for k in range(17)], {}, 400, "image", "at most 16"),
    ("2-images", [("image[]", (f"{k}.png", PNG, "image/png")) for k in range(2)] + MP[1:], {}, 400, "image",
     "reference"),
    ("partial-9", MP, {"stream": "true", "partial_images": "9"}, 400, "partial_images", "0..3"),
    ("partial-no-stream", MP, {"partial_images": "2"}, 400, "partial_images", "stream=true"),
    ("unknown-model", MP, {"model": "c"}, 404, "model", "served: a, b"),
    ("unknown-field", MP, {"complexity": "high"}, 400, "complexity", "unknown field"),
    ("compression-101", MP, {"output_format": "webp", "output_compression": "101"}, 400, "output_compression", "0..100"),
    ("format-gif", MP, {"output_format": "gif"}, 422, "output_format", "png, webp, jpeg"),
    ("quality-ultra", MP, {"quality": "ultra"}, 422, "quality", "low"),
    ("background-green", MP, {"background": "green"}, 422, "background", "transparent"),
    ("transparent-jpeg", MP, {"background": "transparent", "output_format": "jpeg"}, 400, "background", "alpha"),
    ("n-11", MP, {"n": "11"}, 400, "n", "10"),
    ("two-masks", MP + [("mask_image", ("m.png", RGBA_MASK, "image/png"))], {}, 400, "mask", "send one"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_hostile_edit_fields_are_refused_before_any_work(client, app, row):
    _, mp, body, status, param, words = row
    calls = []
    queues = [m.queue for m in app.state.serve.models.values()]
    for q in queues:
        q.submit = (lambda real: lambda *a, **k: calls.append(a) or real(*a, **k))(q.submit)
    try:
        if mp is None:
            r = client.post("/v1/images/edits", json=body)
        else:
            r = client.post("/v1/images/edits", files=mp, data=body)
    finally:
        for q in queues:
            del q.submit
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"], err
    assert calls == []  # refused in the handler: no model time
    assert client.get("/health").json()["status"] == "ok"


def test_a_url_pointing_at_a_listening_server_is_never_fetched(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        s.settimeout(0.5)
        port = s.getsockname()[1]
        for url in (f"http://127.0.0.1:{port}/a.png", f"https://127.0.0.1:{port}/a.png"):
            r = client.post("/v1/images/edits", json={"images": [{"image_url": url}], "prompt": ""})
            assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_url"
        with pytest.raises(socket.timeout):
            s.accept()  # nobody connected


def test_two_models_listed_picked_by_name_and_equal_to_direct_calls(client, two):
    m = client.get("/v1/models").json()["data"]
    assert [d["id"] for d in m] == ["a", "b"] and all(d["family"] == "sd" for d in m)
    assert all(d["defaults"]["steps"] == 2 and d["defaults"]["guidance_scale"] == 7.5 for d in m)
    hole_png = png((HOLE * 255).astype(np.uint8))
    f = {"image": ("x.png", PNG, "image/png"), "mask": ("m.png", hole_png, "image/png")}
    answers = {}
    for name in ("a", "b"):
        r = client.post("/v1/inpaint", files=f, data={"model": name, "seed": "4", "n": "2"})
        assert r.status_code == 200, r.text
        got = [np.asarray(Image.open(io.BytesIO(base64.b64decode(s)))) for s in r.json()["images"]]
        direct = two[name](IMG, HOLE, seed=4, num_candidates=2, steps=2)
        assert all(np.array_equal(g, np.asarray(d)) for g, d in zip(got, direct.candidates))
        answers[name] = got
        assert r.json()["model"]["id"] == two[name].model_id
    assert not np.array_equal(answers["a"][0], answers["b"][0])


def test_each_model_has_its_own_queue(client, app):
    gate = Gate()
    qa = app.state.serve.models["a"].queue
    qa.submit("gate", gate)
    assert gate.started.wait(10)
    try:
        r = client.post("/v1/images/edits", files=MP, data={"model": "b", "seed": "1"})
        assert r.status_code == 200, r.text  # b answers while a's worker is held
        assert qa.busy == 1
    finally:
        gate.release.set()


def test_openai_client_model_picks_between_two_served_models(app):
    import openai

    with live_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        out = {}
        for name in ("a", "b"):
            res = client.images.edit(model=name, image=("in.png", PNG, "image/png"),
                                     mask=("m.png", RGBA_MASK, "image/png"), prompt="", extra_body={"seed": 6})
            assert res.model_extra["model"] == name or res.model_extra["model"]
            out[name] = res.data[0].b64_json
        with pytest.raises(openai.NotFoundError):
            client.images.edit(model="dall-e-2", image=("in.png", PNG, "image/png"),
                               mask=("m.png", RGBA_MASK, "image/png"), prompt="")
    assert out["a"] != out["b"]


def test_a_stream_whose_client_goes_away_stops_its_job(app):
    import httpx2 as httpx

    queue = app.state.serve.models["a"].queue
    jobs = []
    real = queue.submit

    def spy(*a, **k):
        job = real(*a, **k)
        jobs.append(job)
        return job

    queue.submit = spy
    try:
        with live_server(app) as base:
            with httpx.Client(timeout=60) as http:
                with http.stream("POST", base + "/v1/images/edits", files=MP,
                                 data={"model": "a", "stream": "true", "partial_images": "3", "steps": "999",
                                       "seed": "1"}) as r:
                    assert r.status_code == 200
                    for line in r.iter_lines():
                        if line.startswith("event: image_edit.partial_image"):
                            break  # the first partial image came: go away mid-stream
            deadline = time.time() + 30
            while jobs[0].state not in ("cancelled", "done", "failed") and time.time() < deadline:
                time.sleep(0.05)
            job = jobs[0]
            assert job.state == "cancelled" and job.step < job.total, (job.state, job.step, job.total)
            assert queue.busy == 0
            with httpx.Client(timeout=60) as http:  # the server goes on
                assert http.get(base + "/health").json()["status"] == "ok"
    finally:
        del queue.submit
    assert threading.active_count() < 50


def test_prefpaint_serve_serves_two_named_models(tiny_pipeline_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from _serve_helpers import free_port

    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [str(Path(sys.executable).with_name("prefpaint")), "serve", "--model", f"a={tiny_pipeline_dir}",
           "--model", f"b={tiny_pipeline_dir}", "--port", str(port), "--steps", "1", "--device", "cpu", "--offline",
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, models = time.time() + 90, None
        while models is None and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    models = json.load(r)
            except OSError:
                time.sleep(0.2)
        assert [d["id"] for d in models["data"]] == ["a", "b"]
        assert all(d["defaults"]["steps"] == 1 for d in models["data"])
    finally:
        proc.terminate()
        proc.wait(20)


def test_two_models_under_8_concurrent_clients_lose_nothing_and_equal_direct_calls(two):
    """Bounded load: 8 clients x 2 requests over both models at once; every answer equals the direct call."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx2 as httpx
    from prefpaint_apps.serve import create_app

    app = create_app(two, default_steps=2, max_queue=8)
    hole_png = png((HOLE * 255).astype(np.uint8))

    def client(k: int):
        out = []
        with httpx.Client(timeout=120) as http:
            for j in range(2):
                name, seed = ("a", "b")[(k + j) % 2], 100 + 2 * k + j
                r = http.post(base + "/v1/inpaint", files={"image": ("x.png", PNG, "image/png"),
                                                           "mask": ("m.png", hole_png, "image/png")},
                              data={"model": name, "seed": str(seed)})
                out.append((name, seed, r.status_code, r.json()))
        return out

    t0 = time.time()
    with live_server(app) as base:
        with ThreadPoolExecutor(8) as pool:
            results = [x for chunk in pool.map(client, range(8)) for x in chunk]
    assert time.time() - t0 < 240
    assert len(results) == 16 and all(status == 200 for _, _, status, _ in results), [r[3] for r in results]
    # nothing lost: every (model, seed) sent was answered once, by the model it named, for the seed it sent
    sent = {(("a", "b")[(k + j) % 2], 100 + 2 * k + j) for k in range(8) for j in range(2)}
    assert {(name, seed) for name, seed, *_ in results} == sent
    assert all(body["seeds"][0] == seed and body["model"]["id"] == two[name].model_id for name, seed, _, body in results)
    assert all(m.queue.busy == 0 for m in app.state.serve.models.values())
    for name, seed, _, body in results:
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))))
        direct = two[name](IMG, HOLE, seed=seed, steps=2)
        assert np.array_equal(got, np.asarray(direct.image)), (name, seed)
