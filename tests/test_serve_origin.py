"""``prefpaint serve`` refuses other websites and other names (issue 19, class 1), and its upload edges (class 8).

* Origin (CSRF): a page of another origin, in a real headless chromium, POSTs a job by ``fetch`` and by a form;
  the server answers 403 and no job is created. The same requests run the job once that origin is in ``cors``,
  and from the server's own page, so the refusal is the guard's doing.
* Host (DNS rebinding): a name that is not the server's gets 421, in chromium (a resolver rule points
  ``evil.example`` at 127.0.0.1, as a rebinding attacker would) and from a raw client.
* ``response_format=url`` answers start with ``public_url`` (else the bound address), never the ``Host`` sent.
* Uploads: a client that drops mid-upload is one info line; a long text field is 413; a stalled or trickling
  upload is dropped with 408 and its connection slot freed.
"""

from __future__ import annotations

import functools
import http.server
import logging
import re
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
from _serve_helpers import free_port, make_image, png, served_inpainter, square_hole
from fastapi.testclient import TestClient

H, W = 32, 32


@pytest.fixture(scope="module")
def served(tiny_pipeline_dir):
    return served_inpainter(tiny_pipeline_dir)


def _app(served, **kw):
    from prefpaint_apps.serve import create_app

    return create_app(served[0], served[1], default_steps=1, **kw)


def _jobs(app) -> list[str]:
    """Server-side evidence: the kind of every job submitted to ``app``'s queue from now on."""
    queue, calls = app.state.queue, []
    submit = queue.submit

    def spy(kind, fn):
        calls.append(kind)
        return submit(kind, fn)

    queue.submit = spy
    return calls


def _files(n_image: int = 0) -> dict:
    return {"image": ("i.png", png(make_image(H, W, n_image)), "image/png"),
            "mask": ("m.png", png((square_hole(H, W) * 255).astype(np.uint8)), "image/png")}


@contextmanager
def _live(app, **config):
    """``app`` under uvicorn on a free loopback port; yields (base URL, the uvicorn server)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           log_config=None, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(10)


# ---- in a real browser ----------------------------------------------------------------------------------------
ATTACK_PAGE = """<!doctype html><meta charset="utf-8"><title>another site</title>
<form id="f" method="post" enctype="multipart/form-data" action="{target}/v1/inpaint">
  <input type="file" name="image" id="image"><input type="file" name="mask" id="mask">
  <input type="hidden" name="steps" value="1">
</form>"""

# fetch() of a multipart FormData is a "simple" request: a browser sends it without a CORS preflight, so the
# server sees the POST whatever CORS says. Only the answer is hidden from the page.
POST_JS = """
const [target, mode, done] = arguments;
function png(fill) {
  const c = document.createElement('canvas'); c.width = 32; c.height = 32;
  const g = c.getContext('2d'); g.fillStyle = fill; g.fillRect(0, 0, 32, 32);
  return new Promise(r => c.toBlob(r, 'image/png'));
}
(async () => {
  const fd = new FormData();
  fd.append('image', await png('#4080c0'), 'i.png');
  fd.append('mask', await png('#ffffff'), 'm.png');
  fd.append('steps', '1');
  try {
    const r = await fetch(target + '/v1/inpaint', {method: 'POST', body: fd, mode});
    done(r.type === 'opaque' ? 'opaque' : r.status);
  } catch (e) { done('error: ' + e.message); }
})();
"""


@pytest.fixture(scope="module")
def browser(chromium, chromedriver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-features=HttpsUpgrades",
                # DNS rebinding without DNS: evil.example resolves to loopback, as a rebinding attacker makes it.
                "--host-resolver-rules=MAP evil.example 127.0.0.1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@contextmanager
def _other_site(folder, target: str):
    """A second web server on another loopback port: another origin, serving a page that targets ``target``."""
    (folder / "attack.html").write_text(ATTACK_PAGE.format(target=target), encoding="utf-8")
    (folder / "i.png").write_bytes(png(make_image(H, W)))
    (folder / "m.png").write_bytes(png((square_hole(H, W) * 255).astype(np.uint8)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _form_post(driver, site: str, folder) -> str:
    """Open the other site's page, attach the two files and submit its form; the text the browser then shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(site + "/attack.html")
    driver.find_element(By.ID, "image").send_keys(str(folder / "i.png"))
    driver.find_element(By.ID, "mask").send_keys(str(folder / "m.png"))
    driver.execute_script("document.getElementById('f').submit()")
    WebDriverWait(driver, 60).until(lambda d: "/v1/inpaint" in d.current_url and d.find_element(By.TAG_NAME, "body").text)
    return driver.find_element(By.TAG_NAME, "body").text


@pytest.mark.slow
def test_another_sites_page_cannot_run_a_job(browser, served, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="prefpaint_apps.serve.origin")
    app = _app(served)
    jobs = _jobs(app)
    with _live(app) as (base, _), _other_site(tmp_path, base) as site:
        browser.get(site + "/attack.html")
        assert browser.execute_async_script(POST_JS, base, "no-cors") == "opaque"  # sent; its answer hidden
        assert browser.execute_async_script(POST_JS, base, "cors").startswith("error")  # CORS is off
        shown = _form_post(browser, site, tmp_path)
        assert '"code":"origin_not_allowed"' in shown.replace(" ", ""), shown
        assert jobs == []  # none of the three reached the queue
        refused = [r.getMessage() for r in caplog.records if "cross-site" in r.getMessage()]
        assert len(refused) >= 3 and all(site in m for m in refused), refused  # >= : a browser may retry
        # the server's own page posts the same request and it runs
        browser.get(base + "/")
        assert browser.execute_async_script(POST_JS, base, "cors") == 200
        assert jobs == ["inpaint"]


@pytest.mark.slow
def test_the_same_requests_run_from_an_origin_in_cors(browser, served, tmp_path):
    """The control: what the guard refused above is a whole request, which runs when the origin is allowed."""
    port = free_port()
    folder = tmp_path / "site"
    folder.mkdir()
    with _other_site(folder, f"http://127.0.0.1:{port}") as site:
        app = _app(served, cors=[site])
        jobs = _jobs(app)
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                assert thread.is_alive(), "uvicorn did not start"
                time.sleep(0.02)
            browser.get(site + "/attack.html")
            assert browser.execute_async_script(POST_JS, f"http://127.0.0.1:{port}", "cors") == 200
            shown = _form_post(browser, site, folder)
            assert '"images"' in shown and '"seeds"' in shown, shown[:300]
            assert jobs == ["inpaint", "inpaint"]
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.mark.slow
def test_a_rebound_name_gets_421_in_the_browser(browser, served):
    app = _app(served)
    jobs = _jobs(app)
    with _live(app) as (base, _):
        port = base.rsplit(":", 1)[1]
        evil = f"http://evil.example:{port}"
        browser.get(evil + "/health")  # the name now resolves to 127.0.0.1: the server's socket answers
        text = browser.find_element("tag name", "body").text
        assert '"code":"host_not_allowed"' in text.replace(" ", ""), text
        # the attacker's script, same-origin with the rebound name, posts a job: refused too
        assert browser.execute_async_script(POST_JS, evil, "cors") == 421
        assert jobs == []
        browser.get(base + "/health")
        assert '"status":"ok"' in browser.find_element("tag name", "body").text.replace(" ", "")


# ---- raw clients ----------------------------------------------------------------------------------------------
def test_a_foreign_origin_gets_403_before_any_work(served):
    app = _app(served, cors=["http://localhost:3000"])
    jobs = _jobs(app)
    with TestClient(app) as c:
        for origin in ("http://evil.example", "null", "http://testserver:8080", "https://testserver",
                       "http://localhost:3000.evil.example"):
            r = c.post("/v1/inpaint", files=_files(), headers={"Origin": origin})
            assert r.status_code == 403, (origin, r.text)
            assert r.json()["error"]["code"] == "origin_not_allowed" and r.json()["error"]["param"] == "Origin"
            assert c.get("/health", headers={"Origin": origin}).status_code == 403
        assert jobs == []
        # no Origin (curl, SDKs), the server's own origin, and an origin in cors go on
        assert c.post("/v1/inpaint", files=_files()).status_code == 200
        assert c.post("/v1/inpaint", files=_files(), headers={"Origin": "http://testserver"}).status_code == 200
        r = c.post("/v1/inpaint", files=_files(), headers={"Origin": "http://localhost:3000"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
        pre = c.options("/v1/inpaint", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200
        assert c.options("/v1/inpaint", headers={"Origin": "http://evil.example",
                                                 "Access-Control-Request-Method": "POST"}).status_code == 403
        assert jobs == ["inpaint"] * 3


def test_a_name_that_is_not_the_servers_gets_421_on_loopback(served):
    import httpx2 as httpx

    app = _app(served, allowed_hosts=["paint.example.com"])
    jobs = _jobs(app)
    with _live(app) as (base, _):
        port = base.rsplit(":", 1)[1]
        machine = socket.gethostname()  # accepted only on a non-loopback address
        for host in ("evil.example", f"evil.example:{port}", "192.168.1.5", "localhost.evil.example", "a:b:c",
                     *([f"{machine}:{port}"] if machine.lower() != "localhost" else [])):
            for method, path in (("GET", "/"), ("GET", "/health"), ("POST", "/v1/inpaint")):
                r = httpx.request(method, base + path, headers={"Host": host}, timeout=10,
                                  files=_files() if method == "POST" else None)
                assert r.status_code == 421, (host, path, r.text)
                assert r.json()["error"]["code"] == "host_not_allowed"
        assert jobs == []
        for host in ("localhost", f"localhost:{port}", "127.0.0.1", "127.0.0.2:1", "[::1]", f"[::1]:{port}",
                     "LOCALHOST.", "paint.example.com", "Paint.Example.com:443"):
            r = httpx.get(base + "/health", headers={"Host": host}, timeout=10)
            assert r.status_code == 200, (host, r.text)


def test_names_accepted_on_another_address(served):
    """TestClient's connection 'arrives' on testserver:80, not loopback: IP addresses and the machine's name pass."""
    with TestClient(_app(served)) as c:
        for host in ("192.0.2.7", "192.0.2.7:7860", "[2001:db8::1]:80", "localhost", socket.gethostname()):
            assert c.get("/health", headers={"Host": host}).status_code == 200, host
        assert c.get("/health", headers={"Host": "evil.example"}).status_code == 421
    with TestClient(_app(served, allowed_hosts=["*"])) as c:
        assert c.get("/health", headers={"Host": "evil.example"}).status_code == 200
    with TestClient(_app(served, public_url="https://paint.example.com/pp")) as c:
        assert c.get("/health", headers={"Host": "paint.example.com"}).status_code == 200
        assert c.get("/health", headers={"Host": "paint.example.com", "Origin": "https://paint.example.com"}
                     ).status_code == 200


def _rgba_mask() -> bytes:
    return png(np.dstack([make_image(H, W), np.where(square_hole(H, W), 0, 255).astype(np.uint8)]))


def test_url_answers_use_the_public_url_never_the_host(served):
    import httpx2 as httpx

    files = {"image": ("i.png", png(make_image(H, W)), "image/png"), "mask": ("m.png", _rgba_mask(), "image/png")}
    with TestClient(_app(served, public_url="https://paint.example.com/pp/")) as c:
        r = c.post("/v1/images/edits", files=files, data={"response_format": "url"}, headers={"Host": "192.0.2.7"})
        url = r.json()["data"][0]["url"]
        m = re.fullmatch(r"https://paint\.example\.com/pp/v1/files/([A-Za-z0-9_-]{32}\.png)", url)
        assert m, url
        assert c.get(f"/v1/files/{m.group(1)}").headers["content-type"] == "image/png"
    app = _app(served)
    with _live(app) as (base, _):
        port = base.rsplit(":", 1)[1]
        r = httpx.post(base + "/v1/images/edits", files=files, data={"response_format": "url"},
                       headers={"Host": f"localhost:{port}"}, timeout=60)
        url = r.json()["data"][0]["url"]
        assert url.startswith(f"http://127.0.0.1:{port}/v1/files/"), url  # the bound address, not the Host sent
        assert httpx.get(url, timeout=10).status_code == 200


def test_malformed_settings_are_refused_at_create_app(served):
    from prefpaint_sdk import InvalidInputError

    bad = [({"api_key": "cl\u00e9-s3cret"}, "api_key must be printable ASCII.*non-ASCII"),
           ({"api_key": "s3cret\n"}, "control character"),
           ({"api_key": " s3cret"}, "start or end with a space"),
           ({"public_url": "ftp://x.example"}, "public_url must be an http"),
           ({"public_url": "http://"}, "public_url"),
           ({"public_url": "http://u:p@x.example"}, "without user"),
           ({"public_url": "http://x.example:99999"}, "public_url"),
           ({"allowed_hosts": ["http://x.example"]}, "allowed_hosts must be host names"),
           ({"allowed_hosts": ["x.example/path"]}, "allowed_hosts"),
           ({"cors": ["http://x.example/"]}, "cors must be origins"),
           ({"cors": "x.example"}, "cors must be origins"),
           ({"upload_timeout_s": 0}, "upload_timeout_s must be > 0")]
    for kw, match in bad:
        with pytest.raises(InvalidInputError, match=match) as info:
            _app(served, **kw)
        assert "s3cret" not in str(info.value)  # a key is never shown


# ---- upload edges ---------------------------------------------------------------------------------------------
def _partial_post(port: int, declared: int, first: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: %d\r\n\r\n" % declared + first)
    return s


def _read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_a_client_that_drops_mid_upload_is_one_info_line(served, caplog):
    caplog.set_level(logging.INFO)
    app = _app(served)
    with _live(app) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        s = _partial_post(port, 100_000, b"--b\r\n" + b"x" * 2000)
        time.sleep(0.3)
        s.close()
        deadline = time.time() + 10
        while not any("went away" in r.getMessage() for r in caplog.records):
            assert time.time() < deadline, "the drop was not logged"
            time.sleep(0.05)
        time.sleep(0.3)  # anything else it would log comes now
        import httpx2 as httpx

        assert httpx.get(base + "/health", timeout=10).status_code == 200
    ours = [r for r in caplog.records if r.name.startswith(("prefpaint", "uvicorn", "starlette", "fastapi"))]
    assert [(r.levelno, "went away" in r.getMessage()) for r in ours] == [(logging.INFO, True)], \
        [(r.name, r.levelname, r.getMessage()[:120]) for r in ours]
    assert not any(r.exc_info for r in caplog.records)


def test_a_text_field_over_its_limit_is_413(served):
    app = _app(served)
    jobs = _jobs(app)
    with TestClient(app) as c:
        r = c.post("/v1/inpaint", files=_files(), data={"prompt": "x" * (2 << 20)})
        assert r.status_code == 413 and r.json()["error"]["code"] == "field_too_large", r.text
        assert "1,048,576 bytes" in r.json()["error"]["message"]
    assert jobs == []


def test_stalled_and_trickling_uploads_are_dropped_and_free_their_slot(served):
    import httpx2 as httpx

    app = _app(served, upload_timeout_s=1.0)
    # Two connections at most: while a stalled upload holds one, a second client is turned away with 503.
    with _live(app, limit_concurrency=2) as (base, server):
        port = int(base.rsplit(":", 1)[1])
        t0 = time.time()
        s = _partial_post(port, 100_000, b"--b\r\n" + b"x" * 500)
        time.sleep(0.3)
        assert httpx.get(base + "/health", timeout=5).status_code == 503  # the slot is held
        answer = _read_all(s, 10)  # the server answers and closes the connection
        took = time.time() - t0
        s.close()
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"upload_timeout"' in answer, answer[:300]
        assert 0.9 < took < 4, took
        deadline = time.time() + 5
        while server.server_state.connections:
            assert time.time() < deadline, "the stalled connection was kept"
            time.sleep(0.05)
        assert httpx.get(base + "/health", timeout=5).status_code == 200  # the slot is free again

        # never idle for a second, but 10 bytes per 0.1 s: past the timeout it is far below 16 KiB/s
        t0 = time.time()
        s = _partial_post(port, 100_000, b"--b\r\n")
        s.settimeout(0.1)
        answer = b""
        while not answer and time.time() - t0 < 10:
            try:  # read before each send: once the server closed, a send would make it reset the connection
                answer = s.recv(65536)
            except socket.timeout:
                s.sendall(b"y" * 10)
        took = time.time() - t0
        answer += _read_all(s, 5)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
        assert took < 4, took
