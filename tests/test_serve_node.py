"""A second real client in another language (issue 23): the ``openai`` npm package under Node sends the same edits
as the Python client (a WebP at a WxH size, a stream with partial images, a list of images refused plainly) to a
live ``prefpaint serve`` app. scripts/test.sh installs the package (tests/node/package.json); nothing here touches
the network."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _serve_helpers import live_server, make_image, png, served_inpainter
from PIL import Image

NODE_DIR = Path(__file__).with_name("node")
H, W = 48, 64


def _node_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        return "the openai npm package is not installed (scripts/test.sh runs npm ci in tests/node)"
    return None


def test_openai_npm_client_edits_streams_and_is_refused_plainly(tiny_pipeline_dir, tmp_path):
    from prefpaint_apps.serve import create_app

    why = _node_ready()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    img = make_image(H, W, seed=3)
    hole = np.zeros((H, W), bool)
    hole[16:32, 16:40] = True
    (tmp_path / "in.png").write_bytes(png(img))
    (tmp_path / "mask.png").write_bytes(png(np.dstack([img, np.where(hole, 0, 255).astype(np.uint8)])))
    inp, _ = served_inpainter(tiny_pipeline_dir)
    with live_server(create_app(inp, default_steps=4)) as base:
        out = subprocess.run(["node", str(NODE_DIR / "edit.mjs"), base, str(tmp_path / "in.png"),
                              str(tmp_path / "mask.png")], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, NO_PROXY="*"))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    answer = lines[0]["answer"]
    assert answer["output_format"] == "webp" and answer["size"] == "128x96" and answer["quality"] == "medium"
    assert answer["usage"]["images"] == 2 and [d["seed"] for d in answer["data"]] == [4, 5]
    for d in answer["data"]:
        im = Image.open(io.BytesIO(base64.b64decode(d["b64_json"])))
        assert im.format == "WEBP" and im.size == (128, 96)
    events = [x["event"] for x in lines if x["kind"] == "event"]
    assert [e["type"] for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    final = np.asarray(Image.open(io.BytesIO(base64.b64decode(events[-1]["b64_json"]))).convert("RGB"))
    from scipy.ndimage import binary_dilation

    far = ~binary_dilation(hole, iterations=12)
    assert np.array_equal(final[far], img[far])  # byte-exact outside the feathered hole
    refused = lines[-1]
    assert refused["kind"] == "refused" and refused["status"] == 400 and refused["param"] == "image"
