"""Shared helpers of the manifest-job tests: a small manifest of images and one mask; a launch with a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_manifest(root: Path, n: int = 6, *, extra_rows: list[dict] | None = None, size=(64, 48)) -> Path:
    """``root/jobs.jsonl`` with ``n`` rows ``item00..`` (random images, one shared mask, seeds 0..n-1)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "in").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    hole = np.zeros((h, w), np.uint8)
    hole[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
    Image.fromarray(hole).save(root / "in" / "mask.png")
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "in" / f"i{i}.png")
        rows.append({"id": f"item{i:02d}", "image": f"in/i{i}.png", "mask": "in/mask.png", "seed": i})
    rows += extra_rows or []
    path = root / "jobs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _rank_of(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for kv in env:
        if kv.startswith(b"RANK="):
            return kv[5:].decode()
    return None


def launcher_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def run_and_kill_rank1(cmd: list[str], env: dict, folder: Path, after: int = 3) -> int:
    """Start ``cmd`` (a torchrun launch), SIGKILL its rank 1 once ``folder`` holds ``after`` finished ``*.json`` files, wait
    for the launcher; returns its exit code. Fails the test when rank 1 was not found running."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            # finished files only: pathlib's glob also matches an atomic write's hidden '.name.*.tmp.json'
            if folder.is_dir() and sum(not p.name.startswith(".") for p in folder.glob("*.json")) >= after:
                for pid in _descendants(proc.pid):
                    if _rank_of(pid) == "1":
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                break
            time.sleep(0.02)
        proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "rank 1 was not found running"
    return proc.returncode
