"""Where ``prefpaint serve`` spends CPU per request, in CPU seconds (so a busy shared machine changes the figures
little), on ``bench_serve.py``'s input: a 512x512 PNG with a 256x256 hole, n=1, steps=4, the tiny model.

Three parts (``--parts``):

* ``server``: the app of this tree (``create_app``) under uvicorn in a thread of this process, K client threads x M
  requests sent from a *subprocess* (their CPU is not counted here). Reported per answered request: this
  process's CPU, the Inpainter call's own CPU inside the job (thread time), the rest (the server's own work), and
  the CPU of each thread (event loop, threadpool, worker) read from ``/proc`` (Linux). Next to it the same call
  made directly, one thread, nothing else running in the process. ``--yappi`` adds the functions of the
  non-worker threads by CPU (yappi's own overhead inflates those figures about 4x; use them for ranking).
* ``stages``: each step of a request timed alone (thread CPU, median): multipart parsing, decoding the upload and
  the mask, PNG + base64 of the answer, the JSON body.
* ``gil``: the direct call alone against the same call while another thread of the process does 4 requests'
  worth per call of (a) the work that releases the GIL (decoding, PNG) or (b) the Python that holds it (what
  the event loop did per request before: the ``steps`` check, FastAPI's JSON): wall and CPU of the call.

Usage: ``python benchmarks/profile_serve.py [--parts server,stages,gil] [--k 4] [--m 5] [--rounds 2] [--yappi]``.
For another source tree, put a folder whose ``prefpaint_sdk``/``prefpaint_apps`` link to it first on
``PYTHONPATH`` (as ``bench_serve.py --baseline`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import BOUNDARY, form_body, free_port, inputs  # noqa: E402

CLIENT = r'''
import sys, httpx2 as httpx
from concurrent.futures import ThreadPoolExecutor
base, image, mask, k, m, rounds = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read(), *map(int, sys.argv[4:7])
def client(c, r):
    with httpx.Client(timeout=300) as h:
        for j in range(m):
            x = h.post(base + "/v1/inpaint", files={"image": ("i.png", image, "image/png"), "mask": ("m.png", mask, "image/png")},
                       data={"n": "1", "seed": str(1000 * r + c * m + j), "steps": "4"})
            assert x.status_code == 200 and len(x.json()["images"]) == 1, x.text[:300]
for r in range(rounds):
    with ThreadPoolExecutor(k) as pool:
        list(pool.map(lambda c: client(c, r), range(k)))
'''


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def median_ms(xs) -> float:
    return statistics.median(xs) * 1e3


def direct_calls(inp, image, hole, n: int = 10) -> tuple[float, float]:
    """Median CPU and wall ms of a direct call."""
    cpu, wall = [], []
    for seed in range(n):
        t0, c0 = time.perf_counter(), time.thread_time()
        inp(image, hole, seed=seed, num_candidates=1, steps=4)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    return median_ms(cpu), median_ms(wall)


def part_server(args, inp, image, hole, work: Path) -> None:
    import uvicorn
    from prefpaint_apps.serve import create_app

    job_cpu, job_wall = [], []
    real_call = type(inp).__call__

    class Timed(type(inp)):  # the job's Inpainter call, timed on the worker thread
        def __call__(self, *a, **kw):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return real_call(self, *a, **kw)
            finally:
                job_cpu.append(time.thread_time() - c0)
                job_wall.append(time.perf_counter() - t0)

    d_cpu, d_wall = direct_calls(inp, image, hole)
    inp.__class__ = Timed
    app = create_app(inp, default_steps=4)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                                           log_config=None))
    thread = threading.Thread(target=server.run, daemon=True, name="uvicorn-event-loop")
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", CLIENT, base, str(work / "image.png"), str(work / "mask.png")]
    subprocess.run(cmd + ["1", "2", "1"], check=True)  # warm-up
    job_cpu.clear()
    job_wall.clear()
    if args.yappi:
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start()
    before, p0, t0 = thread_cpu(), time.process_time(), time.perf_counter()
    subprocess.run(cmd + [str(args.k), str(args.m), str(args.rounds)], check=True)
    p1, t1, after = time.process_time(), time.perf_counter(), thread_cpu()
    if args.yappi:
        yappi.stop()
    names = {t.native_id: t.name for t in threading.enumerate()}
    server.should_exit = True
    thread.join(10)
    inp.__class__ = Timed.__mro__[1]
    n = len(job_cpu)
    worker = max(after, key=lambda t: after[t] - before.get(t, 0))
    per = {tid: (after[tid] - before.get(tid, 0)) / n * 1e3 for tid in after}
    loop = next((t for t, name in names.items() if name == "uvicorn-event-loop"), None)
    # Threads that ended during the run (idle threadpool threads do) are gone from /proc but not from the
    # process's CPU: the threadpool's share is what the worker and the event loop leave of it.
    pool = (p1 - p0) / n * 1e3 - per[worker] - per.get(loop, 0)
    print(f"server: {n} requests (K={args.k} x M={args.m} x {args.rounds}), wall {t1 - t0:.1f} s, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  process CPU per request            {(p1 - p0) / n * 1e3:7.1f} ms")
    print(f"  Inpainter CPU in the job (median)  {median_ms(job_cpu):7.1f} ms (wall {median_ms(job_wall):.1f} ms)")
    print(f"  Inpainter CPU direct (median)      {d_cpu:7.1f} ms (wall {d_wall:.1f} ms)")
    print(f"  server's own CPU per request       {((p1 - p0) - sum(job_cpu)) / n * 1e3:7.1f} ms "
          "(process CPU minus the Inpainter calls')")
    print(f"  by thread: worker {per[worker]:.1f} ms (job {sum(job_cpu) / n * 1e3:.1f} + the job's own facts and "
          f"queue), event loop {per.get(loop, 0):.1f} ms, threadpool and others {pool:.1f} ms")
    if args.yappi:
        for th in yappi.get_thread_stats():
            ms = th.ttot / n * 1e3
            if ms < 1 or th.name == "Thread" and abs(ms - per[worker]) < 0.5 * per[worker]:
                continue  # the worker (the model call) is not what this looks for
            print(f"  yappi thread {th.name} {th.id}: {ms:.1f} ms/request; top functions by own time:")
            stats = yappi.get_func_stats(ctx_id=th.id)
            stats.sort("tsub")
            for s in list(stats)[:args.rows]:
                print(f"    {s.tsub / n * 1e3:7.2f} own {s.ttot / n * 1e3:7.2f} total {s.ncall:6d}x  {s.full_name[-100:]}")


def part_stages(inp, image_png: bytes, mask_png: bytes) -> None:
    from prefpaint_apps.serve.png import png_bytes
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    from prefpaint_sdk import load_image, load_mask

    body = form_body(image_png, mask_png, {"n": "1", "seed": "0", "steps": "4"})

    async def parse():
        async def stream():
            yield body

        parser = MultiPartParser(Headers({"content-type": f"multipart/form-data; boundary={BOUNDARY}"}), stream(),
                                 max_part_size=1 << 21)
        parser.spool_max_size = 1 << 22
        form = await parser.parse()
        await form.close()

    image = load_image(image_png)
    hole = load_mask(mask_png)
    answer = inp(image, hole, seed=0, num_candidates=1, steps=4).candidates[0]
    loop = asyncio.new_event_loop()  # one loop for every parse: its start is no part of a request
    stages = {f"multipart parse ({len(body) // 1024} KiB body)": lambda: loop.run_until_complete(parse()),
              "decode upload (load_image)": lambda: load_image(image_png),
              "decode mask (load_mask)": lambda: load_mask(mask_png),
              "answer PNG (png_bytes)": lambda: png_bytes(answer)}
    try:  # this tree: base64 and JSON as the server builds them
        from prefpaint_apps.serve.answers import b64_png, json_body

        b64 = b64_png(answer)
        stages["answer PNG + base64 (b64_png, binascii)"] = lambda: b64_png(answer)
        stages["JSON body (json_body)"] = lambda: json_body({"images": [b64], "scores": [0.5], "seed": 1})
    except ImportError:
        pass
    import base64

    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    text = base64.b64encode(png_bytes(answer)).decode("ascii")
    stages["answer PNG + base64 as str (base64.b64encode)"] = lambda: base64.b64encode(png_bytes(answer)).decode("ascii")
    stages["JSON, FastAPI default (jsonable_encoder + JSONResponse)"] = lambda: JSONResponse(
        jsonable_encoder({"images": [text], "scores": [0.5], "seed": 1})).body
    print("stages (thread CPU ms, median of 15):")
    for name, fn in stages.items():
        fn()
        xs = []
        for _ in range(15):
            c0 = time.thread_time()
            fn()
            xs.append(time.thread_time() - c0)
        print(f"  {name:60s} {median_ms(xs):7.2f}")


def gil_release(image, image_png: bytes) -> None:
    """How much of the request threads' C work releases the GIL: with a long switch interval a thread keeps the
    GIL until it lets go itself, so another thread's Python loop (yielding with ``sleep(0)``) advances only while
    the measured call is outside Python. Its iterations per second beside a 6 ms sleep (all released), a Python
    loop (none), the upload's decode and the answer's PNG."""
    from prefpaint_apps.serve.png import png_bytes

    from prefpaint_sdk import load_image

    def python_loop():
        x = 0
        for i in range(200_000):
            x += i

    def rate_beside(fn, n: int = 20) -> float:
        stop, count = threading.Event(), [0]

        def other():
            while not stop.is_set():
                count[0] += 1
                time.sleep(0)

        th = threading.Thread(target=other)
        th.start()
        time.sleep(0.05)
        c0, t0 = count[0], time.perf_counter()
        for _ in range(n):
            fn()
        rate = (count[0] - c0) / (time.perf_counter() - t0)
        stop.set()
        th.join()
        return rate

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        rates = {"sleep 6 ms": rate_beside(lambda: time.sleep(0.006)), "Python loop": rate_beside(python_loop),
                 "decode upload": rate_beside(lambda: load_image(image_png)),
                 "answer PNG": rate_beside(lambda: png_bytes(image))}
    finally:
        sys.setswitchinterval(old)
    print("gil released: another thread's Python iterations/s beside each call, as a share of beside a sleep: "
          + ", ".join(f"{k} {v / rates['sleep 6 ms']:.0%}" for k, v in rates.items()))


def part_gil(inp, image, hole, image_png: bytes, mask_png: bytes, rounds: int = 3) -> None:
    """The direct call alone, and beside a thread doing K=4 requests' worth of work per call (paced over the
    call): (a) the work that releases the GIL (decoding the upload and mask, the answer's PNG) and (b) the Python
    that holds it, as the event loop did per request before this change (the scheduler check of ``steps`` and
    FastAPI's JSON of the answer). Rounds alternate alone / (a) / (b); medians of the calls' wall and CPU."""
    import base64

    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse
    from prefpaint_apps.serve.png import png_bytes

    from prefpaint_sdk import load_image, load_mask

    answer = inp(image, hole, seed=0, num_candidates=1, steps=4).candidates[0]
    text = base64.b64encode(png_bytes(answer)).decode("ascii")

    def c_work():
        load_image(image_png)
        load_mask(mask_png)
        png_bytes(answer)

    def python_work():
        inp.check_steps(4)
        return JSONResponse(jsonable_encoder({"images": [text], "scores": [0.5]})).body

    def cost_ms(fn) -> float:
        c0 = time.thread_time()
        for _ in range(5):
            fn()
        return (time.thread_time() - c0) / 5 * 1e3

    def calls_beside(fn, call_s: float, k: int = 4):
        stop = threading.Event()

        def beside():
            while not stop.is_set():
                for _ in range(k):
                    fn()
                stop.wait(call_s)

        th = threading.Thread(target=beside, daemon=True)
        if fn is not None:
            th.start()
        out = direct_calls(inp, image, hole, n=6)
        stop.set()
        if fn is not None:
            th.join()
        return out

    costs = {"alone": 0.0, "(a) GIL-free C work": cost_ms(c_work), "(b) GIL-holding Python": cost_ms(python_work)}
    call_s = direct_calls(inp, image, hole, n=3)[1] / 1e3
    results: dict[str, list] = {name: [] for name in costs}
    for _ in range(rounds):
        for name, fn in (("alone", None), ("(a) GIL-free C work", c_work), ("(b) GIL-holding Python", python_work)):
            results[name].append(calls_beside(fn, call_s))
    print("gil: the direct call beside 4 requests' worth of other work per call (median of rounds):")
    for name, rs in results.items():
        cpu, wall = statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)
        print(f"  {name:24s} (that work: {4 * costs[name]:5.1f} ms CPU per call)  call CPU {cpu:6.1f} ms, wall {wall:6.1f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="server,stages,gil")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--yappi", action="store_true", help="also profile the non-worker threads (pip install yappi)")
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--gil-rounds", type=int, default=3, help="alternating rounds of the gil part")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import prefpaint_apps

    from prefpaint_sdk import Inpainter
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, save_tiny_reward_model

    print(f"tree: {Path(prefpaint_apps.__file__).resolve().parent.parent}")
    with tempfile.TemporaryDirectory(prefix="profile-serve-") as tmp:
        work = Path(tmp)
        image, hole, image_png, mask_png = inputs(512)
        (work / "image.png").write_bytes(image_png)
        (work / "mask.png").write_bytes(mask_png)
        inp = Inpainter.from_pretrained(save_tiny_inpaint_pipeline(work / "pipe", size="tiny"), device="cpu",
                                        dtype="float32", reward_model=save_tiny_reward_model(work / "rm"), offline=True)
        inp(image, hole, seed=99, num_candidates=1, steps=4)
        parts = [p.strip() for p in args.parts.split(",")]
        if "stages" in parts:
            part_stages(inp, image_png, mask_png)
        if "gil" in parts:
            gil_release(image, image_png)
            part_gil(inp, image, hole, image_png, mask_png, rounds=args.gil_rounds)
        if "server" in parts:
            part_server(args, inp, image, hole, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
