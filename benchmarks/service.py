"""What the HTTP engine costs on top of ``sketch()``, and how many requests it answers: prints tables.

    python benchmarks/service.py [--clip random:tiny-RN] [--iterations 100] [--repeats 3]
                                 [--also random:RN101:5] [--health-seconds 5] [--health-threads 1,8]

Job overhead: the same sketch (same photo, settings, iterations) run by ``sketch()`` in this
process and through a real ``clipasso serve`` process on loopback: base64 upload, checks,
queue, worker, progress bookkeeping and preview SVGs, result JSON. "HTTP (SSE)" follows the job
with the event stream, "HTTP (poll 0.5 s)" as the extension does with ``EngineClient.wait``.
After one warm-up per path (models loaded), the three paths run interleaved ``--repeats`` times
with the same seeds (the poll path differs in ``patience``, unused without early stop, so the
result cache never answers); the table gives median and minimum seconds: on a shared machine
the minimum is the steadier estimate. Both sides use the same CPU cores, one at a time. Tiny
random models make one step cost milliseconds, so the fixed per-job cost weighs far more than
with the real RN101 (``--also random:RN101:5``: same cost as the real weights).

Health: ``GET /v1/health`` from N client threads with keep-alive connections for a few seconds,
with the engine idle and while it runs a job; the clients share this process's GIL, so the
numbers are a floor for what the engine can answer.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from skimage import data

from clipasso_engine.api import sketch
from clipasso_engine.client import EngineClient, EngineUnavailable
from clipasso_engine.settings import SketchSettings


def photo_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "PNG")          # 451 × 300, a real photo
    return buf.getvalue()


def start_engine(folder: Path, clip: str, device: str) -> tuple[subprocess.Popen, EngineClient]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, CLIPASSO_CONFIG_DIR=str(folder), CLIPASSO_CLIP=clip)
    proc = subprocess.Popen([sys.executable, "-m", "clipasso_engine", "serve", "--port", str(port), "--device", device],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "engine.log", "wb"), env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            client = EngineClient(f"http://127.0.0.1:{port}", (folder / "token").read_text().strip(), timeout=60)
            client.health()
            return proc, client
        except (OSError, EngineUnavailable):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the engine did not start; see {folder / 'engine.log'}")
            time.sleep(0.2)


def timed(run: Callable[[int], Any], seed: int) -> float:
    t = time.perf_counter()
    run(seed)
    return time.perf_counter() - t


def job_row(client: EngineClient, image: bytes, clip: str, iterations: int, repeats: int, device: str) -> str:
    """One table row: median / min seconds per path and the HTTP paths' overhead over in-process."""
    saliency = "random:tiny-ViT" if "tiny" in clip else "random:ViT-B-32"
    base = {"clip": clip, "saliency_clip": saliency, "iterations": iterations, "preset": "fast", "strokes": 16,
            "early_stop": False, "device": device}

    def local(seed: int) -> None:
        sketch(image, SketchSettings(**base, seed=seed))

    def over_sse(seed: int) -> None:
        job = client.submit(image, dict(base, seed=seed))
        for status in client.events(job):
            pass
        assert status["state"] == "done", status
        client.result(job)

    def over_poll(seed: int) -> None:
        # patience only matters with early stop (off here): a cache miss for the same work as over_sse
        client.wait(client.submit(image, dict(base, seed=seed, patience=999)), poll=0.5)

    paths = {"local": local, "sse": over_sse, "poll": over_poll}
    for run in paths.values():
        run(0)                                          # warm-up: models loaded on both sides
    # interleaved, same seeds on every path: load from other processes hits all three alike
    times: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(repeats):
        for name, run in paths.items():
            times[name].append(timed(run, 1 + i))
    med = {name: statistics.median(t) for name, t in times.items()}
    low = {name: min(t) for name, t in times.items()}
    cells = [f"{med['local']:.2f} / {low['local']:.2f}"]
    for name in ("sse", "poll"):
        cells += [f"{med[name]:.2f} / {low[name]:.2f}",
                  f"{100 * (med[name] / med['local'] - 1):+.1f} % / {100 * (low[name] / low['local'] - 1):+.1f} %"]
    return f"| {clip} | {iterations} | " + " | ".join(cells) + " |"


def health_row(client: EngineClient, threads: int, seconds: float, label: str) -> str:
    host, port = client.url.removeprefix("http://").rsplit(":", 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def hammer(out: list[float]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Authorization": f"Bearer {client.token}"}
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("GET", "/v1/health", headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            out.append(time.perf_counter() - t)
        conn.close()

    workers = [threading.Thread(target=hammer, args=(out,)) for out in latencies]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    every = sorted(x for out in latencies for x in out)
    p99 = every[min(len(every) - 1, int(0.99 * len(every)))]
    return (f"| {label} | {threads} | {len(every)} | {len(every) / seconds:.0f} | "
            f"{1e3 * statistics.median(every):.1f} | {1e3 * p99:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random:tiny-RN")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--also", action="append", default=[], metavar="CLIP:ITERATIONS",
                    help="another row, e.g. random:RN101:5 (the real model's cost)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--health-seconds", type=float, default=5.0)
    ap.add_argument("--health-threads", default="1,8")
    args = ap.parse_args()
    image = photo_png()
    rows = [(args.clip, args.iterations)] + [(spec.rsplit(":", 1)[0], int(spec.rsplit(":", 1)[1])) for spec in args.also]
    with tempfile.TemporaryDirectory() as tmp:
        proc, client = start_engine(Path(tmp), args.clip, args.device)
        try:
            print(f"device {args.device}, {os.cpu_count()} CPU cores, photo 451×300, 16 strokes, 1 seed, "
                  f"{args.repeats} interleaved runs after a warm-up; saliency random:tiny-ViT for tiny rows, else random:ViT-B-32\n")
            print("Each cell: median / min.\n")
            print("| CLIP | iterations | in-process s | HTTP (SSE) s | overhead | HTTP (poll 0.5 s) s | overhead |")
            print("|---|---|---|---|---|---|---|")
            for clip, iterations in rows:
                print(job_row(client, image, clip, iterations, args.repeats, args.device), flush=True)

            print("\n| GET /v1/health | client threads | requests | req/s | p50 ms | p99 ms |")
            print("|---|---|---|---|---|---|")
            for threads in (int(t) for t in args.health_threads.split(",")):
                print(health_row(client, threads, args.health_seconds, "engine idle"), flush=True)
            busy = client.submit(image, {"clip": args.clip, "saliency": False, "iterations": 20000, "preset": "fast",
                                         "seed": 999, "device": args.device})
            while client.status(busy, preview=False)["iteration"] < 1:
                time.sleep(0.1)
            for threads in (int(t) for t in args.health_threads.split(",")):
                print(health_row(client, threads, args.health_seconds, "a job running"), flush=True)
            client.cancel(busy)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
