"""``remote=http://HOST:PORT``: a reward computed by a server that speaks the score protocol.

**The protocol** (what ``prefpaint serve`` answers, and what an adapter in front of a vLLM- or SGLang-served
judge must answer): ``POST {URL}/v1/score`` with a ``multipart/form-data`` body of one image:

* ``image``: the inpainted image, PNG;
* ``mask``: its mask, PNG, white = the hole;
* ``prompt`` (text, optional): the prompt, sent when the caller has one.

The answer is ``200`` with a JSON object holding one finite number ``score`` (higher is better) and,
optionally, ``bound`` (an error bound, finite or null) and ``trust`` (the server's trust weight for it). Any other answer is an error. A key
in ``PREFPAINT_REMOTE_API_KEY`` is sent as ``Authorization: Bearer KEY``.

**The client** sends a batch as one request per image, ``concurrency`` at a time, each within ``timeout``
seconds for the whole exchange (a body that trickles in counts against it too). A refused connection,
a timeout, a 429 or a 5xx answer is retried ``retries`` times with a short backoff; then it fails in one
line. Each answer is checked: a JSON object with exactly one finite score.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ..errors import ConfigError, ModelNotFoundError, RemoteRewardError
from .base import RewardScores, hole_of, to_pil

__all__ = ["RemoteReward", "check_remote_url", "probe_remote"]

_MAX_ANSWER = 1 << 20  # a score answer is a few hundred bytes
_RETRY_STATUS = {429, 500, 502, 503, 504}


def check_remote_url(url: str) -> str:
    """``url`` as ``http(s)://HOST:PORT`` without a trailing slash.

    Raises:
        ConfigError: another scheme, no host, or a bad port.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise ConfigError(f"remote reward '{url}' is not an http(s)://HOST:PORT URL; write e.g. remote=http://127.0.0.1:8000")
    return url.rstrip("/")


def probe_remote(url: str, timeout: float = 3.0) -> None:
    """Refuse a remote reward whose host does not accept a connection (cheap: no request is sent).

    Raises:
        ModelNotFoundError: the host cannot be resolved or refuses the connection within ``timeout``.
    """
    parts = urlsplit(check_remote_url(url))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise ModelNotFoundError(f"remote reward {url} is unreachable ({exc.strerror or exc}); start the server "
                                 "(e.g. prefpaint serve --reward-model RM) or fix the URL") from None


def _png(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _multipart(fields: dict[str, tuple[str | None, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = []
    for name, (filename, data, ctype) in fields.items():
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class RemoteReward:
    """The reward a server computes (see the module docstring for the protocol).

    Args:
        url: ``http(s)://HOST:PORT`` of the server.
        timeout: seconds for one whole request (connect, send, answer).
        retries: further tries after a refused connection, a timeout, a 429 or a 5xx.
        concurrency: requests in flight at once.
        api_key: sent as a bearer token (default: ``PREFPAINT_REMOTE_API_KEY``).
    """

    needs_original = False
    needs_prompts = False

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 2, concurrency: int = 4,
                 api_key: str | None = None, backoff: float = 0.25):
        self.url = check_remote_url(url)
        self.timeout, self.retries, self.concurrency, self.backoff = float(timeout), int(retries), int(concurrency), backoff
        self.api_key = api_key if api_key is not None else os.environ.get("PREFPAINT_REMOTE_API_KEY")

    def __call__(self, images, masks, masked_images=None, *, prompts=None) -> RewardScores:
        import numpy as np
        import torch
        from PIL import Image

        n = images.shape[0]
        pils = to_pil(images)
        holes = [Image.fromarray(np.where(hole_of(m, images.shape[-2:]), 255, 0).astype(np.uint8), "L") for m in masks]
        texts = [None] * n if prompts is None else ([prompts] * n if isinstance(prompts, str) else list(prompts))
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, n))) as pool:
            answers = list(pool.map(self._score_one, range(n), pils, holes, texts))
        scores = torch.tensor([a[0] for a in answers], dtype=torch.float32)
        bounds = torch.tensor([a[1] for a in answers], dtype=torch.float32) if all(a[1] is not None for a in answers) else None
        trust = torch.tensor([a[2] for a in answers], dtype=torch.float32) if all(a[2] is not None for a in answers) else None
        return RewardScores(scores, bounds, trust if bounds is not None else None)

    def _score_one(self, i: int, image, mask, prompt) -> tuple[float, float | None, float | None]:
        fields = {"image": ("image.png", _png(image), "image/png"), "mask": ("mask.png", _png(mask), "image/png")}
        if prompt is not None:
            fields["prompt"] = (None, str(prompt).encode(), "text/plain; charset=utf-8")
        body, ctype = _multipart(fields)
        return self._check(i, self._post(body, ctype))

    def _post(self, body: bytes, ctype: str) -> bytes:
        headers = {"Content-Type": ctype, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url + "/v1/score", data=body, headers=headers, method="POST")
            try:
                return self._read(req)
            except urllib.error.HTTPError as exc:
                detail = _error_text(exc)
                if exc.code not in _RETRY_STATUS:
                    raise RemoteRewardError(f"remote reward {self.url} answered HTTP {exc.code}: {detail}") from None
                last = f"answered HTTP {exc.code}: {detail}"
            except TimeoutError:
                last = f"did not answer within {self.timeout:g} s"
            except (urllib.error.URLError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError):
                    last = f"did not answer within {self.timeout:g} s"
                else:
                    last = f"is unreachable ({getattr(reason, 'strerror', None) or reason})"
        tries = self.retries + 1
        if last.startswith("is unreachable"):
            raise ModelNotFoundError(f"remote reward {self.url} {last} after {tries} tries; start the server or fix the URL")
        raise RemoteRewardError(f"remote reward {self.url} {last} after {tries} tries; check the server")

    def _read(self, req) -> bytes:
        """The answer's body, within ``timeout`` for the whole exchange (not just each socket read)."""
        deadline = time.monotonic() + self.timeout
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = resp.read1(65536)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > _MAX_ANSWER:
                    raise RemoteRewardError(f"remote reward {self.url} answered more than {_MAX_ANSWER} bytes for one "
                                            "score; is this a score server?")
                chunks.append(chunk)

    def _check(self, i: int, raw: bytes) -> tuple[float, float | None, float | None]:
        where = f"remote reward {self.url}"
        try:
            ans = json.loads(raw)
        except ValueError:
            raise RemoteRewardError(f"{where} answered image {i} with something that is not JSON: {raw[:60]!r}") from None
        if not isinstance(ans, dict):
            raise RemoteRewardError(f"{where} answered image {i} with a JSON {type(ans).__name__}, not an object with 'score'")
        score = ans["score"] if "score" in ans else ans.get("scores")
        if isinstance(score, list):  # a batch-shaped answer must still hold exactly one score for one image
            if len(score) != 1:
                raise RemoteRewardError(f"{where} answered {len(score)} scores for 1 image; it must answer one per image")
            score = score[0]
        if score is None:
            raise RemoteRewardError(f"{where} answered 0 scores for image {i} (no 'score' key); it must answer one per image")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise RemoteRewardError(f"{where} answered a non-finite or non-numeric score {score!r} for image {i}; "
                                    "check the server's model")
        extra = []
        for key in ("bound", "trust"):
            v = ans.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise RemoteRewardError(f"{where} answered a non-finite {key} {v!r} for image {i}; check the server")
            extra.append(None if v is None else float(v))
        return float(score), extra[0], extra[1]


def _error_text(exc) -> str:
    try:
        body = json.loads(exc.read(4096) or b"{}")
        msg = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, OSError, AttributeError):
        msg = None
    return str(msg or exc.reason)[:200]
