"""``prefpaint serve`` under concurrent load vs direct ``Inpainter`` calls on the same work (issue 13).

A live server is started the way a user starts it: the ``prefpaint serve`` command as a subprocess on
127.0.0.1 with a free port, over a random model folder (``prefpaint_sdk.testing.save_tiny_inpaint_pipeline``,
``--size tiny`` and/or ``mid``) and a tiny reward model (``save_tiny_reward_model``), so every answer carries
scores. Then, side by side in one run (rounds interleaved, server first in even rounds, direct first in odd):

* ``server``: K client threads (one keep-alive ``http.client`` connection each) send M ``POST /v1/inpaint`` requests each
  on loopback, all at once; each request has its own seed, and its multipart body is built before the round (the
  clients share the cores with the server). Every answer is parsed and checked. Bounded in count (K x M) and
  time (a per-request timeout and a per-round deadline after which no new request is sent).
* ``direct``: the same K x M calls (same image, mask, n, steps, seeds) of an ``Inpainter`` loaded in this
  process from the same folders, one after another: what a user would otherwise run.

Reported per model: requests sent, accepted (not refused with 429), answered (200 with n images and n
finite scores) and lost (accepted but not answered: errors, timeouts, malformed bodies; target 0),
p50/p95 client latency, and throughput (answered requests/s vs direct calls/s; target >= 0.9x). A check
that the server computes the same thing: the first candidate of the server's answer for a seed is compared
with the direct call's for that seed (max difference in grey levels). The server's and this process's torch
threads are set equal (``--threads``, default 1; the server through ``OMP_NUM_THREADS``): on these shared
2-core machines two torch threads under contention run 5x slower than one (OpenMP waits on a busy core), which
would measure the machine's load, not the server.

Several models (issue 23's load proof): ``--models 2`` serves two models of the size side by side (``--model a=DIR
--model b=DIR2``, different weights); request ``i`` names model ``i mod 2``, and the direct calls alternate over two
``Inpainter`` objects the same way. The same-pixels check then covers each model.

Before/after in one run: ``--baseline DIR`` also starts the server of another source tree (e.g. an earlier
commit: ``git archive <commit> | tar -x -C DIR``; its packages are put first on that server's ``PYTHONPATH``),
and every round measures it too, the order of the three rotating from round to round.

Usage: ``python benchmarks/bench_serve.py [--sizes tiny,mid] [--k 4] [--m 5] [--n 1] [--steps 4]
[--repeats 2] [--threads 1] [--models 1] [--baseline DIR] [--write FILE]`` (exit 1 when a request was lost)
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from prefpaint_sdk import Inpainter
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, save_tiny_reward_model

PREFPAINT = Path(sys.executable).with_name("prefpaint")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inputs(side: int, seed: int = 0) -> tuple[Image.Image, np.ndarray, bytes, bytes]:
    """A smooth photo-like RGB image (coarse colours upsampled, mild noise: PNG compresses it as it does a
    photo, not as it does white noise), a centred square hole of half the side, and both as PNG bytes."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC)
    a = np.clip(np.asarray(coarse, np.int16) + rng.integers(-6, 7, (side, side, 3)), 0, 255).astype(np.uint8)
    hole = np.zeros((side, side), bool)
    hole[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = True
    image = Image.fromarray(a)
    bufs = []
    for im in (image, Image.fromarray(hole.astype(np.uint8) * 255)):
        b = io.BytesIO()
        im.save(b, "PNG")
        bufs.append(b.getvalue())
    return image, hole, bufs[0], bufs[1]


BOUNDARY = "bench-serve-7f3a9c1e"
NAMES = "abcdefgh"  # the served models' names with --models N


def form_body(image_png: bytes, mask_png: bytes, fields: dict[str, str]) -> bytes:
    """A ``multipart/form-data`` body as an HTTP client sends it (the two PNGs as file parts, then the fields),
    built once per request in advance so that the clients, which share this machine's cores with the server,
    cost as little as they can."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
             "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n"
             for name, data in (("image", image_png), ("mask", mask_png))]
    parts += [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
              for k, v in fields.items()]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def source_shim(src: Path, work: Path) -> Path:
    """A folder whose prefpaint_sdk, prefpaint_apps and prefpaint_cli are the source tree ``src``'s packages."""
    shim = work / "baseline-shim"
    shim.mkdir(exist_ok=True)
    for name, folder in (("prefpaint_sdk", "prefpaint_sdk"), ("prefpaint_apps", "apps"), ("prefpaint_cli", "cli")):
        if not (src / folder / "__init__.py").is_file():
            raise SystemExit(f"--baseline {src}: no {folder}/__init__.py there; pass the root of a source tree")
        (shim / name).symlink_to((src / folder).resolve(), target_is_directory=True)
    return shim


def start_server(model_dirs: list[Path], rm_dir: Path, steps: int, threads: int, log_path: Path, shim: Path | None = None):
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if shim is not None:  # ahead of the editable install: this server runs the other tree's code
        env["PYTHONPATH"] = os.pathsep.join([str(shim), *filter(None, [os.environ.get("PYTHONPATH")])])
    log = open(log_path, "w")
    models = [x for i, d in enumerate(model_dirs)
              for x in ("--model", str(d) if len(model_dirs) == 1 else f"{NAMES[i]}={d}")]
    proc = subprocess.Popen([str(PREFPAINT), "serve", *models, "--reward-model", str(rm_dir),
                             "--host", "127.0.0.1", "--port", str(port), "--steps", str(steps), "--device", "cpu",
                             "--dtype", "float32", "--offline", "--quiet"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc, f"http://127.0.0.1:{port}"


def wait_health(base: str, proc, log_path: Path, timeout: float) -> dict:
    import json

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefpaint serve exited {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return json.loads(r.read())
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"prefpaint serve did not answer /health within {timeout:.0f} s")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads, ended ones included) of process ``pid``, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_server(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Load:
    """One server round: K client threads x M requests, all sent at once; every outcome is recorded."""

    def __init__(self, base: str, image_png: bytes, mask_png: bytes, n: int, steps: int, timeout: float,
                 deadline: float, models: int = 1):
        self.base, self.image_png, self.mask_png, self.models = base, image_png, mask_png, models
        self.n, self.steps, self.timeout, self.deadline = n, steps, timeout, deadline
        self.lock = threading.Lock()
        self.records: list[dict] = []

    def client(self, seeds: list[int], bodies: dict[int, bytes], stop_at: float) -> None:
        import http.client
        import json
        from urllib.parse import urlsplit

        url = urlsplit(self.base)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        # The standard library's keep-alive connection: with 4 client threads httpx2 spent ~19 ms of CPU per
        # request here against 1.7 ms for this, CPU taken from the cores the server runs on.
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=self.timeout)
        try:
            for seed in seeds:
                if time.perf_counter() > stop_at:
                    self._add(seed=seed, status="not sent (deadline)")
                    continue
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/v1/inpaint", body=bodies[seed], headers=headers)
                    r = conn.getresponse()
                    raw = r.read()
                    latency = time.perf_counter() - t0
                    body = json.loads(raw)
                except Exception as exc:  # a timeout or a broken connection: counted as lost, never raised
                    conn.close()  # the next request opens a new connection
                    self._add(seed=seed, status=f"error {type(exc).__name__}", latency=time.perf_counter() - t0)
                    continue
                self._check(seed, r.status, latency, body)
        finally:
            conn.close()

    def _check(self, seed: int, status: int, latency: float, body) -> None:
        """Record one answer: valid when it has n images and n finite scores."""
        rec = dict(seed=seed, status=status, latency=latency)
        if status == 200:
            scores = body.get("scores") or []
            rec["valid"] = (len(body.get("images", [])) == self.n and len(scores) == self.n
                            and all(s is not None and np.isfinite(s) for s in scores))
            rec["timings"] = body.get("timings") or {}
            rec["image0"] = body["images"][0] if body.get("images") else None
        self._add(**rec)

    def _add(self, **rec) -> None:
        with self.lock:
            self.records.append(rec)

    def run(self, k: int, m: int, seed0: int) -> float:
        """Send K x M requests from K threads; return the round's wall seconds (first send to last answer)."""
        seeds = [[seed0 + c * m + j for j in range(m)] for c in range(k)]
        bodies = {seed: form_body(self.image_png, self.mask_png,
                                  {"n": str(self.n), "seed": str(seed), "steps": str(self.steps),
                                   **({"model": NAMES[seed % self.models]} if self.models > 1 else {})})
                  for part in seeds for seed in part}
        t0 = time.perf_counter()
        stop_at = t0 + self.deadline
        with ThreadPoolExecutor(k) as pool:
            futures = [pool.submit(self.client, part, bodies, stop_at) for part in seeds]
            for f in futures:
                f.result()
        return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank): p95 of 20 values is the 19th smallest."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(np.ceil(q / 100 * len(v))) - 1))]


def bench_size(size: str, args, work: Path, rm_dir: Path, image, hole, image_png: bytes, mask_png: bytes,
               shim: Path | None = None) -> list[dict]:
    """One model size: a row per server (this tree's, and the baseline's with ``shim``), each against the same
    direct calls of the same rounds."""
    t_size = time.perf_counter()
    model_dirs = [save_tiny_inpaint_pipeline(work / f"pipe-{size}-{i}", size=size, seed=i) for i in range(args.models)]
    servers: dict[str, tuple] = {}
    try:
        for label, sh in (("server", None), ("baseline", shim)):
            if label == "baseline" and shim is None:
                continue
            log_path = work / f"serve-{size}-{label}.log"
            proc, base = start_server(model_dirs, rm_dir, args.steps, args.threads, log_path, sh)
            servers[label] = (proc, base, log_path)
        directs = [Inpainter.from_pretrained(d, device="cpu", dtype="float32", reward_model=rm_dir, offline=True)
                   for d in model_dirs]
        health = {label: wait_health(base, proc, log_path, args.start_timeout)
                  for label, (proc, base, log_path) in servers.items()}
        call = dict(num_candidates=args.n, steps=args.steps)
        loads = {label: Load(base, image_png, mask_png, args.n, args.steps, args.timeout, args.deadline, args.models)
                 for label, (_, base, _) in servers.items()}

        # Warm-up: one request to each server and one direct call (first-call costs are not the steady state).
        for _, base, _ in servers.values():
            Load(base, image_png, mask_png, args.n, args.steps, args.timeout, args.deadline).run(1, 1, 10_000)
        for direct in directs:
            direct(image, hole, seed=10_000, **call)

        seeds_per_round = args.k * args.m
        server_walls: dict[str, list] = {label: [] for label in servers}
        # CPU seconds per round, which a busy machine changes far less than wall time: the server process's, this
        # process's while the clients run (what the clients cost), and this process's in the direct calls.
        server_cpu: dict[str, list] = {label: [] for label in servers}
        client_cpu: dict[str, list] = {label: [] for label in servers}
        direct_walls, direct_lat, direct_total, direct_cpu = [], [], [], []
        direct_first: dict[int, np.ndarray] = {}

        def server_round(label: str, r: int) -> None:
            load = loads[label]
            n_before = len(load.records)
            pid = servers[label][0].pid
            s0, c0 = process_cpu(pid), time.process_time()
            wall = load.run(args.k, args.m, seed0=r * seeds_per_round)
            s1, c1 = process_cpu(pid), time.process_time()
            answered = sum(1 for x in load.records[n_before:] if x.get("valid"))
            server_walls[label].append((wall, answered))
            server_cpu[label].append((s1 - s0, answered))
            client_cpu[label].append((c1 - c0, answered))

        def direct_round(r: int) -> None:
            t0, c0 = time.perf_counter(), time.process_time()
            for seed in range(r * seeds_per_round, (r + 1) * seeds_per_round):
                tc = time.perf_counter()
                res = directs[seed % len(directs)](image, hole, seed=seed, **call)
                direct_lat.append(time.perf_counter() - tc)
                direct_total.append(res.timings.get("total_s", float("nan")))
                assert res.scores is not None and len(res.scores) == args.n
                if seed - r * seeds_per_round < len(directs):  # each model's first request of the round
                    direct_first[seed] = np.asarray(res.candidates[0])
            direct_walls.append((time.perf_counter() - t0, seeds_per_round))
            direct_cpu.append((time.process_time() - c0, seeds_per_round))

        steps = [("direct", direct_round)] + [(label, lambda r, label=label: server_round(label, r)) for label in servers]
        for r in range(args.repeats):
            shift = r % len(steps)  # rotate the order: each runs first, middle and last in turn
            for _, fn in steps[shift:] + steps[:shift]:
                fn(r)
            walls = ", ".join(f"{label} {server_walls[label][-1][0]:.2f} s" for label in servers)
            print(f"  {size}: round {r + 1}/{args.repeats}: {walls}, direct {direct_walls[-1][0]:.2f} s",
                  file=sys.stderr, flush=True)
    finally:
        for proc, _, _ in servers.values():
            stop_server(proc)

    direct_tp = [c / w for w, c in direct_walls]

    def per_request_ms(pairs) -> float:  # seconds and counts of the rounds -> ms per request over all of them
        count = sum(c for _, c in pairs)
        return sum(x for x, _ in pairs) / count * 1e3 if count else float("nan")

    rows = []
    for label, load in loads.items():
        recs = load.records
        sent = [x for x in recs if x["status"] != "not sent (deadline)"]
        refused = [x for x in sent if x["status"] == 429]
        accepted = [x for x in sent if x["status"] != 429]
        answered = [x for x in accepted if x.get("valid")]
        lat = [x["latency"] for x in answered]
        # Same work: the server's first candidate for a seed against the direct call's for that seed.
        diffs = []
        for seed, ref in direct_first.items():
            rec = next((x for x in answered if x["seed"] == seed and x.get("image0")), None)
            if rec is not None:
                got = np.asarray(Image.open(io.BytesIO(base64.b64decode(rec["image0"]))).convert("RGB"))
                diffs.append(int(np.abs(got.astype(np.int16) - ref.astype(np.int16)).max())
                             if got.shape == ref.shape else 999)
        server_tp = [a / w for w, a in server_walls[label]]
        ratios = [s / d for s, d in zip(server_tp, direct_tp)]
        t = [x["timings"] for x in answered]
        overhead_http = [x["latency"] - x["timings"].get("queue_s", 0) - x["timings"].get("job_s", 0) for x in answered]
        rows.append(dict(
            size=(size if args.models == 1 else f"{size} x{args.models} models") + ("" if label == "server" else ", baseline"), k=args.k, m=args.m, rounds=args.repeats,
            sent=len(sent), accepted=len(accepted), answered=len(answered), lost=len(accepted) - len(answered),
            refused=len(refused), not_sent=len(recs) - len(sent),
            statuses=sorted({str(x["status"]) for x in accepted if not x.get("valid")}),
            p50=pct(lat, 50), p95=pct(lat, 95), direct_p50=statistics.median(direct_lat),
            server_tp=statistics.median(server_tp), direct_tp=statistics.median(direct_tp),
            ratio=statistics.median(ratios), ratios=ratios,
            job_s=statistics.median([x.get("job_s", float("nan")) for x in t]) if t else float("nan"),
            infer_s=statistics.median([x.get("total_s", float("nan")) for x in t]) if t else float("nan"),
            direct_infer_s=statistics.median(direct_total),
            http_s=statistics.median(overhead_http) if t else float("nan"),
            server_cpu_ms=per_request_ms(server_cpu[label]), client_cpu_ms=per_request_ms(client_cpu[label]),
            direct_cpu_ms=per_request_ms(direct_cpu),
            max_diff=max(diffs) if diffs else None, max_queue=health[label]["queue"]["max"],
            answer_kib=statistics.median([len(x["image0"]) * 3 / 4 / 1024 for x in answered if x.get("image0")])
            if answered else float("nan"),
            seconds=time.perf_counter() - t_size,
        ))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="tiny,mid", help="comma-separated model sizes of prefpaint_sdk.testing")
    ap.add_argument("--k", type=int, default=4, help="concurrent clients")
    ap.add_argument("--m", type=int, default=5, help="requests per client per round")
    ap.add_argument("--n", type=int, default=1, help="candidates per request")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--side", type=int, default=512, help="input image side in pixels (the hole is half of it)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds of server and direct")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of both (0 = torch's default here)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    ap.add_argument("--deadline", type=float, default=150.0, help="seconds after which a round sends no more")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="seconds the server may take to start")
    ap.add_argument("--models", type=int, default=1, help="models served side by side (requests alternate over them)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="source tree of another version whose server is measured in the same rounds")
    ap.add_argument("--write", default=None, help="append the markdown to this file")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    load0 = os.getloadavg()[0]
    t_all = time.perf_counter()
    image, hole, image_png, mask_png = inputs(args.side)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        rm_dir = save_tiny_reward_model(work / "rm")
        shim = source_shim(args.baseline, work) if args.baseline is not None else None
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            rows.extend(bench_size(size, args, work, rm_dir, image, hole, image_png, mask_png, shim))
    total = time.perf_counter() - t_all

    import diffusers
    import fastapi
    import uvicorn

    import prefpaint_sdk

    machine = (f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, device cpu; Python "
               f"{sys.version.split()[0]}, torch {torch.__version__} (threads {args.threads} in both processes), "
               f"diffusers {diffusers.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
               f"prefpaint {prefpaint_sdk.__version__}; load average at start {load0:.1f}.")
    lines = [
        f"### bench_serve.py: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        machine,
        (f"Work: `POST /v1/inpaint`, {args.side}x{args.side} PNG ({len(image_png) / 1024:.0f} KiB) with a "
         f"{args.side // 2}x{args.side // 2} hole, n={args.n}, steps={args.steps}, tiny reward model attached "
         f"(scores in every answer); K={args.k} clients x M={args.m} requests per round, {args.repeats} rounds "
         f"interleaved with the same calls made directly; `prefpaint serve` subprocess on 127.0.0.1, "
         f"--max-queue {rows[0]['max_queue'] if rows else '?'}. Whole run {total:.0f} s."),
        "",
        "| model | sent | accepted | answered | lost | refused (429) | p50 latency s | p95 latency s | direct call s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['size']} | {r['sent']} | {r['accepted']} | {r['answered']} | {r['lost']} | {r['refused']} | "
          f"{r['p50']:.3f} | {r['p95']:.3f} | {r['direct_p50']:.3f} |" for r in rows],
        "",
        "Where the time goes (medians per answered request): `total_s` is the Inpainter's own call inside the",
        "server's job; job - Inpainter is the job's own work past it (trust, the answer's facts); HTTP is client",
        "latency minus queue wait and job (upload, multipart parsing, image decoding, and since eea04b8 the PNG",
        "encoding and base64 of the answer, done after the job in the request's threadpool; JSON).",
        "",
        "| model | Inpainter in server s | Inpainter direct s | job - Inpainter s | HTTP s | answer PNG KiB | same pixels (max diff) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['size']} | {r['infer_s']:.3f} | {r['direct_infer_s']:.3f} | {r['job_s'] - r['infer_s']:.3f} | "
          f"{r['http_s']:.3f} | {r['answer_kib']:.0f} | {r['max_diff'] if r['max_diff'] is not None else 'n/a'} |"
          for r in rows],
        "",
        "CPU per answered request (all rounds; process CPU: user + system, every thread; the server's from /proc):",
        "the server process against the direct call's process, and what the clients cost in this process.",
        "",
        "| model | server process CPU ms/request | direct call CPU ms | server's own (difference) ms | clients' CPU ms/request |",
        "|---|---:|---:|---:|---:|",
        *[f"| {r['size']} | {r['server_cpu_ms']:.1f} | {r['direct_cpu_ms']:.1f} | "
          f"{r['server_cpu_ms'] - r['direct_cpu_ms']:.1f} | {r['client_cpu_ms']:.1f} |" for r in rows],
        "",
        "Side by side (throughput; median over rounds; target: 0 lost, ratio >= 0.9):",
        "",
        "| model | server answered/s | direct calls/s | ratio server/direct | ratio per round | lost | target |",
        "|---|---:|---:|---:|---|---:|---|",
        *[f"| {r['size']} | {r['server_tp']:.2f} | {r['direct_tp']:.2f} | {r['ratio']:.2f} | "
          f"{', '.join(f'{x:.2f}' for x in r['ratios'])} | {r['lost']} | "
          f"{'met' if r['lost'] == 0 and r['ratio'] >= 0.9 else 'NOT met'} |" for r in rows],
        "",
    ]
    for r in rows:
        if r["not_sent"] or r["statuses"]:
            lines.append(f"{r['size']}: {r['not_sent']} not sent (deadline); statuses of lost: {r['statuses']}.")
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write(text + "\n")
    return 0 if all(r["lost"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
