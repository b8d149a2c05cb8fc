"""``prefpaint serve``'s app through FastAPI's TestClient, on the tiny model: every endpoint and every error."""

from __future__ import annotations

import base64
import io
import json
import re
import time

import numpy as np
import pytest
from _serve_helpers import Gate, make_image, png, served_inpainter, square_hole
from fastapi.testclient import TestClient
from PIL import Image

from prefpaint_sdk.testing import write_png_bomb

H, W = 48, 40


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("serve-rm") / "rm")


@pytest.fixture(scope="module")
def served(tiny_pipeline_dir, rm_dir):
    return served_inpainter(tiny_pipeline_dir, rm_dir)


def make_app(served, **kw):
    from prefpaint_apps.serve import create_app

    inp, rm = served
    kw.setdefault("default_steps", 2)
    return create_app(inp, kw.pop("reward_model", rm), **kw)


@pytest.fixture(scope="module")
def client(served):
    with TestClient(make_app(served)) as c:
        yield c


@pytest.fixture(scope="module")
def keyed(served):
    with TestClient(make_app(served, api_key="s3cret", max_upload_mb=0.05, max_pixels=5000)) as c:
        yield c


IMG = make_image(H, W)
HOLE = square_hole(H, W)
MASK = png((HOLE * 255).astype(np.uint8))


def files(image=None, mask=MASK, **more):
    f = {"image": ("x.png", png(IMG) if image is None else image, "image/png")}
    if mask is not None:
        f["mask"] = ("m.png", mask, "image/png")
    for k, v in more.items():
        f[k] = ("f.png", v, "image/png")
    return f


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def far_from(hole: np.ndarray, band: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return ~binary_dilation(hole, iterations=band)


# ---- endpoints --------------------------------------------------------------------------------------
def test_health_and_models(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["reward_model"] is True and h["auth"] is False and h["family"] == "sd"
    assert h["queue"] == {"busy": 0, "max": 16}
    m = client.get("/v1/models").json()
    assert m["object"] == "list" and m["data"][0]["object"] == "model" and m["data"][0]["family"] == "sd"
    assert m["data"][0]["reward_model"]["id"]


def test_inpaint_returns_the_sidecar_facts_and_keeps_pixels_outside_the_hole(client):
    r = client.post("/v1/inpaint", files=files(), data={"n": "3", "seed": "7", "steps": "2", "mask_blur": "4"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["seeds"] == [7, 8, 9] and len(j["images"]) == 3 and j["size"] == [W, H]
    assert len(j["scores"]) == len(j["bounds"]) == len(j["trust"]) == 3
    assert j["chosen"] == int(np.argmax(j["scores"])) and j["seed"] == j["seeds"][j["chosen"]]
    assert j["params"]["steps"] == 2 and j["params"]["select"] == "reward" and j["params"]["mask_blur"] == 4
    assert j["model"]["family"] == "sd" and j["model"]["id"] and "revision" in j["model"]
    assert {"total_s", "sample_s", "queue_s"} <= set(j["timings"]) and j["box"]
    keep = far_from(HOLE, 9)
    for b64 in j["images"]:
        out = decode(b64)
        assert out.shape == IMG.shape
        assert np.array_equal(out[keep], IMG[keep])
        assert not np.array_equal(out[HOLE], IMG[HOLE])


def test_inpaint_same_seed_same_pixels_and_lcb_select(client):
    a = client.post("/v1/inpaint", files=files(), data={"n": "2", "seed": "3"}).json()
    b = client.post("/v1/inpaint", files=files(), data={"n": "2", "seed": "3", "select": "lcb"}).json()
    assert a["images"] == b["images"]
    keys = np.asarray(b["scores"]) - np.asarray(b["bounds"])
    assert b["chosen"] == int(np.argmax(keys)) and b["params"]["select"] == "lcb"


@pytest.mark.parametrize("mask, data", [
    (png((HOLE * 255).astype(np.uint8)), {}),                                          # L
    (png(np.dstack([(HOLE * 255).astype(np.uint8)] * 3)), {}),                         # RGB
    (png(np.dstack([(HOLE * 255).astype(np.uint8)] * 3 + [np.full((H, W), 255, np.uint8)])), {}),  # RGBA
    (png(Image.fromarray(HOLE).convert("1")), {}),                                     # 1-bit
    (png(((~HOLE) * 255).astype(np.uint8)), {"invert_mask": "true"}),                  # black = fill
    (png(np.dstack([IMG, np.where(HOLE, 0, 255).astype(np.uint8)])), {"mask_from_alpha": "true"}),
], ids=["L", "RGB", "RGBA", "1-bit", "invert", "alpha"])
def test_inpaint_takes_every_mask_format(client, mask, data):
    r = client.post("/v1/inpaint", files=files(mask=mask), data={"seed": "1", **data})
    assert r.status_code == 200, r.text
    ref = client.post("/v1/inpaint", files=files(), data={"seed": "1"}).json()
    assert r.json()["images"] == ref["images"]


def test_openai_edits_with_a_transparent_mask_and_without_one(client):
    rgba_mask = png(np.dstack([IMG, np.where(HOLE, 0, 255).astype(np.uint8)]))
    r = client.post("/v1/images/edits", files=files(mask=rgba_mask),
                    data={"prompt": "", "n": "2", "response_format": "b64_json", "model": "anything", "user": "u"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert isinstance(j["created"], int) and len(j["data"]) == 2
    assert sum(d["chosen"] for d in j["data"]) == 1
    for d in j["data"]:
        assert {"b64_json", "seed", "score", "bound", "trust", "chosen"} <= set(d)
        out = decode(d["b64_json"])
        keep = far_from(HOLE, 17)  # the default seam is 8 px
        assert np.array_equal(out[keep], IMG[keep])
    own = client.post("/v1/images/edits", files=files(image=rgba_mask, mask=None), data={"n": "1", "size": "64x80"})
    assert own.status_code == 200, own.text
    assert decode(own.json()["data"][0]["b64_json"]).shape == (80, 64, 3)


def test_score(client):
    r = client.post("/v1/score", files=files())
    assert r.status_code == 200, r.text
    j = r.json()
    assert np.isfinite(j["score"]) and j["bound"] > 0 and 1.0 <= j["trust"] <= 2.21
    n = client.post("/v1/score", files=files(), data={"normalize": "true"}).json()
    assert n["normalized"] is True and n["score"] != j["score"]
    masked = np.where(HOLE[..., None], 0, IMG).astype(np.uint8)
    m = client.post("/v1/score", files=files(mask=None, masked_image=png(masked)))
    assert m.status_code == 200 and m.json()["score"] == pytest.approx(j["score"], abs=1e-5)


def test_async_job_progress_sse_and_cancel(client):
    r = client.post("/v1/inpaint?wait=false", files=files(), data={"n": "1", "steps": "3"})
    assert r.status_code == 202 and r.headers["location"] == r.json()["status_url"]
    job = r.json()["id"]
    with client.stream("GET", f"/v1/jobs/{job}/events") as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1]["status"] == "done" and events[-1]["step"] == events[-1]["total"] == 3
    assert len(events[-1]["result"]["images"]) == 1
    got = client.get(f"/v1/jobs/{job}").json()
    assert got["status"] == "done" and got["result"]["seeds"] == events[-1]["result"]["seeds"]
    # a queued job behind a held worker: position 1, then cancelled, never run
    gate = Gate()
    client.app.state.queue.submit("gate", gate)
    assert gate.started.wait(10)
    queued = client.post("/v1/inpaint?wait=false", files=files()).json()
    assert client.get(f"/v1/jobs/{queued['id']}").json()["position"] == 1
    assert client.delete(f"/v1/jobs/{queued['id']}").json()["status"] == "cancelled"
    gate.release.set()
    view = client.get(f"/v1/jobs/{queued['id']}").json()
    assert view["status"] == "cancelled" and view["error"]["code"] == "cancelled"


def test_page_and_assets_are_served_by_the_app(client):
    r = client.get("/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/static/") for a in assets)
    for a in assets:
        body = client.get(a)
        assert body.status_code == 200 and body.content
        assert not re.search(r"https?://", body.text), f"{a} names another origin"
    assert client.get("/static/../app.py").status_code == 404


def test_output_dir_gets_whole_sets_with_server_names(served, tmp_path):
    out = tmp_path / "outs"
    with TestClient(make_app(served, output_dir=out)) as c:
        r = c.post("/v1/inpaint", files={"image": ("../../evil.png", png(IMG), "image/png"),
                                        "mask": ("/etc/passwd", MASK, "image/png")}, data={"n": "2"})
        assert r.status_code == 200, r.text
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(r.json()["files"]) and len(names) == 4  # image, sidecar, 2 candidates
    assert all(r.json()["id"] in n for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outs"]


# ---- errors: JSON naming the problem, and the server keeps serving --------------------------------------
def _bomb(tmp_path_factory=None) -> bytes:
    import tempfile
    from pathlib import Path

    p = Path(tempfile.mkdtemp()) / "bomb.png"
    write_png_bomb(p)
    return p.read_bytes()


BOMB = _bomb()
NO_ALPHA = png(IMG)
TRUNCATED = png(IMG)[:80]

ERRORS = [
    # (id, path, files, data, status, param, substring)
    ("bomb-image", "/v1/inpaint", files(image=BOMB), {}, 413, "image", "pixels"),
    ("bomb-mask", "/v1/inpaint", files(mask=BOMB), {}, 413, "mask", "pixels"),
    ("bomb-edits", "/v1/images/edits", files(image=BOMB, mask=None), {}, 413, "image", "pixels"),
    ("bomb-score", "/v1/score", files(image=BOMB), {}, 413, "image", "pixels"),
    ("truncated-image", "/v1/inpaint", files(image=TRUNCATED), {}, 400, None, "not a readable image"),
    ("text-as-image", "/v1/inpaint", files(image=b"hello, I am text"), {}, 415, "image", "PNG, JPEG"),
    ("pdf-as-mask", "/v1/inpaint", files(mask=b"%PDF-1.4 ..."), {}, 415, "mask", "image type"),
    ("mask-size", "/v1/inpaint", files(mask=png(np.zeros((10, 30), np.uint8))), {}, 400, "mask",
     "; pass resize_mask=true to resize it"),
    ("steps-1000", "/v1/inpaint", files(), {"steps": "1000"}, 400, "steps", "999"),
    ("steps-0", "/v1/inpaint", files(), {"steps": "0"}, 400, "steps", "steps"),
    ("n-0", "/v1/inpaint", files(), {"n": "0"}, 400, "n", "n must be"),
    ("n-11", "/v1/inpaint", files(), {"n": "11"}, 400, "n", "10"),
    ("seed-negative", "/v1/inpaint", files(), {"seed": "-1"}, 400, "seed", "seed"),
    ("seed-2**32", "/v1/inpaint", files(), {"seed": str(2**32)}, 400, "seed", "seed"),
    ("mask-dilate-negative", "/v1/inpaint", files(), {"mask_dilate": "-2"}, 400, "mask_dilate", "mask_dilate"),
    ("guidance-nan", "/v1/inpaint", files(), {"guidance": "nan"}, 422, "guidance", "finite"),
    ("guidance-inf", "/v1/inpaint", files(), {"guidance": "inf"}, 422, "guidance", "finite"),
    ("n-text", "/v1/inpaint", files(), {"n": "many"}, 422, "n", "whole number"),
    ("select-unknown", "/v1/inpaint", files(), {"select": "best"}, 422, "select", "reward, lcb"),
    ("unknown-field", "/v1/inpaint", files(), {"stpes": "3"}, 422, "stpes", "unknown field"),
    ("markup-field", "/v1/inpaint", files(), {"[bold]x": "1"}, 422, "[bold]x", "[bold]x"),
    ("missing-mask", "/v1/inpaint", files(mask=None), {}, 422, "mask", "required"),
    ("image-as-text", "/v1/inpaint", None, {"image": "x.png"}, 422, "image", "file upload"),
    ("bool-garbage", "/v1/inpaint", files(), {"invert_mask": "maybe"}, 422, "invert_mask", "true or false"),
    ("edits-mask-no-alpha", "/v1/images/edits", files(mask=NO_ALPHA), {}, 400, "mask", "transparent"),
    ("edits-no-mask-no-alpha", "/v1/images/edits", files(mask=None), {}, 400, "mask", "transparent"),
    ("edits-mask-size", "/v1/images/edits", files(mask=png(np.zeros((10, 10, 4), np.uint8))), {}, 400, "mask",
     "must match"),
    ("edits-size-garbage", "/v1/images/edits", files(mask=None), {"size": "big"}, 422, "size", "WIDTHxHEIGHT"),
    ("edits-size-huge", "/v1/images/edits", files(mask=None), {"size": "8192x8192"}, 400, "size", "limit"),
    ("eta-2", "/v1/inpaint", files(), {"eta": "2"}, 400, "eta", "eta"),
    ("eta-nan", "/v1/inpaint", files(), {"eta": "nan"}, 422, "eta", "finite"),
    ("eta-text", "/v1/inpaint", files(), {"eta": "<b>x</b>"}, 422, "eta", "number"),
    ("edits-format-unknown", "/v1/images/edits", files(mask=None), {"response_format": "xml"}, 422,
     "response_format", "b64_json"),
    # streaming is served since issue 23: a stream's images cannot be URLs
    ("edits-stream-url", "/v1/images/edits", files(mask=None), {"stream": "true", "response_format": "url"}, 400,
     "response_format", "stream"),
    ("score-no-mask", "/v1/score", files(mask=None), {}, 422, "mask", "masked_image"),
    ("score-mask-size", "/v1/score", files(mask=png(np.zeros((5, 5), np.uint8))), {}, 400, "mask", "must match"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_are_json_naming_the_problem(client, case):
    _, path, f, data, status, param, text = case
    r = client.post(path, files=f, data=data) if f is not None else client.post(
        path, files={"mask": ("m.png", MASK, "image/png")}, data=data)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert text in err["message"], err
    if param is not None:
        assert err["param"] == param, err
    assert "\n" not in err["message"] and "Traceback" not in r.text and "--" not in err["message"]
    assert "=True" not in err["message"] and "=False" not in err["message"]  # the form's terms, not Python's
    assert client.get("/health").json()["status"] == "ok"


def test_an_sdk_error_reads_in_the_form_fields_terms():
    """The HTTP door renders an SDK error from its parts: a parameter that is a field of the request reads as
    the field, advice about anything else (a Python argument, a server setting) is left out."""
    from prefpaint_apps.serve.forms import api_text

    from prefpaint_sdk import InvalidInputError
    from prefpaint_sdk.utils import Arg, Hint

    exc = InvalidInputError("mask is 20x10 but image is 40x10", Hint("; pass ", Arg("resize_mask", True),
                                                                      " to resize it"))
    assert str(exc).endswith("pass resize_mask=True to resize it")  # Python's terms
    assert api_text(exc, fields={"resize_mask"}) == "mask is 20x10 but image is 40x10; pass resize_mask=true to resize it"
    assert api_text(exc) == "mask is 20x10 but image is 40x10"  # no such field: the advice is left out
    named = InvalidInputError("", Arg("steps"), " must be ≥ 1, got 0")
    assert api_text(named, fields={"steps"}) == "steps must be ≥ 1, got 0"
    assert api_text("a plain message; pass --overwrite to replace it") == "a plain message"


def test_content_type_other_than_multipart_is_415(client):
    r = client.post("/v1/inpaint", json={"image": "aGVsbG8="})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]


def test_unknown_job_route_and_method(client):
    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.get("/v1/jobs/nope").json()["error"]["code"] == "job_not_found"
    assert client.get("/v1/nothing").json()["error"]["message"] == "not found"
    r = client.get("/v1/inpaint")
    assert r.status_code == 405 and "GET" in r.json()["error"]["message"]


def test_score_without_a_reward_model_is_400(served, tiny_pipeline_dir):
    from prefpaint_sdk import Inpainter

    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32")
    with TestClient(make_app((inp, None))) as c:
        r = c.post("/v1/score", files=files())
        assert r.status_code == 400 and "--reward-model" in r.json()["error"]["message"]
        j = c.post("/v1/inpaint", files=files()).json()
        assert j["scores"] is None and j["trust"] is None and j["chosen"] == 0


def test_api_key_missing_wrong_and_right(keyed):
    assert keyed.get("/health").status_code == 200  # health is open: no data in it
    r = keyed.get("/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key" and r.headers["www-authenticate"]
    assert keyed.get("/v1/models", headers={"Authorization": "Bearer nope"}).json()["error"]["code"] == "invalid_api_key"
    assert keyed.get("/v1/models", headers={"X-API-Key": "s3cret "}).status_code == 401
    assert keyed.post("/v1/inpaint", files=files()).status_code == 401  # before the body is read
    assert keyed.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert keyed.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert keyed.get("/v1/jobs/x", headers={"Authorization": "Bearer ünïcode".encode("utf-8")}).status_code == 401


def test_api_key_is_compared_in_constant_time(monkeypatch):
    from types import SimpleNamespace

    from prefpaint_apps.serve import ApiError, errors

    calls = []
    real = errors.secrets.compare_digest
    monkeypatch.setattr(errors.secrets, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    auth = errors.key_check("s3cret")
    with pytest.raises(ApiError, match="wrong API key"):
        auth(SimpleNamespace(headers={"authorization": "Bearer wrong"}))
    auth(SimpleNamespace(headers={"x-api-key": "s3cret"}))  # accepted, through the same comparison
    assert calls == [(b"wrong", b"s3cret"), (b"s3cret", b"s3cret")]
    errors.key_check(None)(SimpleNamespace(headers={}))  # no key set: nothing to compare
    assert len(calls) == 2


def test_upload_and_pixel_limits_are_413(keyed):
    auth = {"Authorization": "Bearer s3cret"}
    big = {"image": ("x.png", png(make_image(160, 160, 1)), "image/png"), "mask": ("m.png", MASK, "image/png")}
    r = keyed.post("/v1/inpaint", files=big, headers=auth)  # ~77 kB > 0.05 MiB
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"
    over = keyed.post("/v1/inpaint", files={"image": ("x.png", png(np.zeros((80, 80, 3), np.uint8)), "image/png"),
                                           "mask": ("m.png", MASK, "image/png")}, headers=auth)
    assert over.status_code == 413 and "5,000" in over.json()["error"]["message"]
    assert "--max-pixels" not in over.json()["error"]["message"]
    lied = keyed.post("/v1/inpaint", content=b"x", headers={**auth, "Content-Length": "999999999999",
                                                            "Content-Type": "multipart/form-data; boundary=b"})
    assert lied.status_code == 413


def test_queue_full_is_429_with_retry_after(served):
    with TestClient(make_app(served, max_queue=2)) as c:
        q = c.app.state.queue
        gate = Gate()
        q.submit("gate", gate)
        assert gate.started.wait(10)
        waiting = c.post("/v1/inpaint?wait=false", files=files())
        assert waiting.status_code == 202
        r = c.post("/v1/inpaint", files=files())
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "queue_full" and "max_queue" in r.json()["error"]["message"]
        assert c.get("/health").json()["queue"] == {"busy": 2, "max": 2}  # health answers during a long job
        gate.release.set()
        deadline = time.time() + 30
        while c.get(f"/v1/jobs/{waiting.json()['id']}").json()["status"] != "done":
            assert time.time() < deadline
            time.sleep(0.05)
        assert c.post("/v1/inpaint", files=files()).status_code == 200


@pytest.mark.parametrize("kw, match", [
    (dict(max_queue=0), "max_queue"), (dict(max_upload_mb=float("nan")), "max_upload_mb"),
    (dict(max_pixels=0), "max_pixels"), (dict(default_steps=5000), "steps"), (dict(api_key=" "), "api_key"),
])
def test_create_app_refuses_bad_settings(served, kw, match):
    from prefpaint_sdk import InvalidInputError

    with pytest.raises(InvalidInputError, match=match):
        make_app(served, **kw)


# ---- the queue itself ---------------------------------------------------------------------------------
def test_job_queue_cancels_queued_and_running_jobs():
    from prefpaint_apps.serve import Cancelled, JobQueue, QueueFull

    q = JobQueue(max_queue=3)
    gate = Gate()
    ran = []
    held = q.submit("gate", gate)
    assert gate.started.wait(5)
    later = q.submit("x", lambda job: ran.append("later"))
    assert q.position(held) == 0 and q.position(later) == 1

    def stepping(job):
        for i in range(1000):
            job.progress(i, 1000)
            time.sleep(0.005)
        ran.append("stepping finished")

    step_job = q.submit("s", stepping)
    with pytest.raises(QueueFull):
        q.submit("y", lambda job: None)
    assert q.cancel(later) and later.state == "cancelled"
    gate.release.set()
    deadline = time.time() + 10
    while step_job.step < 3:
        assert time.time() < deadline
        time.sleep(0.01)
    q.cancel(step_job)
    assert step_job.wait(5) and step_job.state == "cancelled"
    assert ran == [] and held.state == "done"
    failing = q.submit("f", lambda job: 1 / 0)
    assert failing.wait(5) and failing.state == "failed" and isinstance(failing.error, ZeroDivisionError)
    q.stop()
    assert Cancelled.__mro__[1] is Exception


# ---- the command ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["fastapi", "uvicorn", "python_multipart"])
def test_a_missing_serve_extra_is_exit_2_naming_the_install(monkeypatch, module):
    import sys

    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    r = CliRunner().invoke(app, ["serve", "--model", "nobody/not-cached", "--offline"], env={"COLUMNS": "2000"})
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'prefpaint[serve]'" in lines[0], r.stderr


def test_binding_beyond_loopback_without_a_key_warns(monkeypatch, tiny_pipeline_dir):
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    ran = {}

    class FakeServer:
        def __init__(self, config):
            ran["config"] = config

        def run(self):
            ran["run"] = True

    import uvicorn
    from _serve_helpers import free_port

    port = free_port()
    monkeypatch.setattr(uvicorn, "Server", FakeServer)
    r = CliRunner().invoke(app, ["serve", "--model", str(tiny_pipeline_dir), "--host", "0.0.0.0", "--port", str(port),
                                 "--offline", "--device", "cpu", "--dtype", "float32", "-q"],
                           env={"COLUMNS": "2000", "PREFPAINT_API_KEY": ""})
    assert r.exit_code == 0, r.output
    assert ran.get("run") and ran["config"].host == "0.0.0.0" and ran["config"].port == port
    assert "without --api-key" in r.stderr
    r = CliRunner().invoke(app, ["serve", "--model", str(tiny_pipeline_dir), "--port", str(port), "--offline",
                                 "--device", "cpu", "--dtype", "float32", "-q"], env={"COLUMNS": "2000"})
    assert r.exit_code == 0 and "warning" not in r.stderr and ran["config"].host == "127.0.0.1"
