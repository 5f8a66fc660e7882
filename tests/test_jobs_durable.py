"""Durable jobs: the queue keeps every job on disk (``server/store.py``) and reads them back.

In-process queues over real folders (corrupt files, retention with an injected clock), a
subprocess whose file-size limit makes checkpoints fail (a full disk), and real ``clipasso
serve`` processes killed with SIGKILL or stopped over HTTP, then started again.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests
from PIL import Image
from skimage import data

from clipasso_engine import SketchSettings, sketch
from clipasso_engine.optimize import LoopState
from clipasso_engine.server.jobs import DAY, JobNotFound, JobQueue, Work
from clipasso_engine.server.store import JobStore, write_atomic
from engine_support import start_engine, stop_engine, wait_for

TINY = {"clip": "random:tiny-RN", "saliency_clip": "random:tiny-ViT"}
# a few ms a step: long enough to be caught running, deterministic on the CPU
STEADY = {"preset": "fast", "strokes": 4, "aug_bank": 4, "augmentations": 1, "saliency": False, "eval_every": 5,
          "early_stop": False}


def png(color: str = "white", size: tuple[int, int] = (48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def coffee() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.coffee()).resize((150, 100)).save(buf, "PNG")
    return buf.getvalue()


def work(seed: int, iterations: int = 1, image: bytes | None = None) -> Work:
    settings = SketchSettings(**TINY, **dict(STEADY, iterations=iterations, strokes=2, aug_bank=0, augmentations=0),
                              seed=seed, device="cpu")
    return Work(image=image or png(), settings=settings, width=48, height=32)


def settle(queue: JobQueue, job_id: str) -> str:
    deadline = time.monotonic() + 120
    while (state := queue.get(job_id).state) in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} still {state}"
        time.sleep(0.02)
    return state


def running(queue: JobQueue, job_id: str, steps: int = 1) -> None:
    wait_for(lambda: queue.get(job_id).state == "running" and queue.get(job_id).iteration >= steps, timeout=120,
             every=0.02)


# --- in-process queues over real folders ------------------------------------------------------------------

def test_jobs_are_read_back_by_a_new_queue(tmp_path):
    store = JobStore(tmp_path / "jobs")
    first = JobQueue("cpu", store=store, checkpoint_seconds=0)
    first.start()
    done = first.submit(work(1, iterations=3)).id
    assert settle(first, done) == "done"
    result = first.get(done).result
    long = first.submit(work(2, iterations=20000)).id
    running(first, long, 3)
    queued = first.submit(work(3)).id
    first.stop()                                     # as the engine stopping: the jobs pause
    on_disk = json.loads((store.path(long) / "state.json").read_text())
    assert on_disk["state"] == "running" and (store.path(long) / "checkpoint.pt").exists()
    assert json.loads((store.path(queued) / "state.json").read_text())["state"] == "queued"
    assert not (store.path(done) / "image").exists()          # an ended job lets go of its photo

    again = JobQueue("cpu", store=store, checkpoint_seconds=0)
    assert again.get(done).result == result and again.snapshot(again.get(done))["has_result"]
    assert again.get(done).preview_svg and again.submit(work(1, iterations=3)).cached    # the cache, too
    assert [j.id for j in again._waiting] == [long, queued]                             # in their order
    paused_at = LoopState.from_bytes((store.path(long) / "checkpoint.pt").read_bytes()).iteration
    again.start()
    try:
        running(again, long, paused_at + 2)
        status = again.snapshot(again.get(long))
        assert status["resumed_from"] == paused_at > 0 and status["iteration"] > paused_at
        again.cancel(long)
        assert settle(again, long) == "cancelled" and settle(again, queued) == "done"
    finally:
        again.stop()


def test_damaged_job_folders_are_reported_and_skipped(tmp_path, caplog):
    store = JobStore(tmp_path / "jobs")
    q = JobQueue("cpu", store=store, checkpoint_seconds=0)
    q.start()
    ids = [q.submit(work(seed, iterations=3)).id for seed in range(3)]
    assert [settle(q, i) for i in ids] == ["done"] * 3
    paused = q.submit(work(10, iterations=20000)).id
    running(q, paused, 3)
    q.stop()
    bad_json, no_request, no_result = ids
    (store.path(bad_json) / "state.json").write_text('{"state": "do')              # torn by hand
    (store.path(no_request) / "request.json").unlink()
    (store.path(no_result) / "result.json").unlink()
    checkpoint = store.path(paused) / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])                            # truncated
    (store.folder / "not-a-job").mkdir()
    (store.folder / ("f" * 32)).mkdir()                                              # empty: never acknowledged
    (store.path(paused) / ".state.json.x.tmp").write_text("half a write")

    again = JobQueue("cpu", store=store, checkpoint_seconds=0)                       # no exception
    for job_id, why in [(bad_json, "state.json is not valid JSON"), (no_request, "request.json is missing"),
                        (no_result, "result.json is missing"), ("f" * 32, "state.json is missing")]:
        status = again.snapshot(again.get(job_id))
        assert status["state"] == "failed" and "damaged" in status["error"] and why in status["error"], status
        assert not status["has_result"]
    assert "not-a-job" not in {j.id for j in again.jobs()}
    assert not list(store.path(paused).glob("*.tmp"))
    assert "is damaged" in caplog.text
    again.start()
    try:                                  # the truncated checkpoint: logged, the job starts over
        wait_for(lambda: again.get(paused).resumed_from is not None)
        assert again.get(paused).resumed_from == 0 and "its checkpoint is damaged" in caplog.text
        running(again, paused, 1)
        again.cancel(paused)
        assert settle(again, paused) == "cancelled"
        assert settle(again, again.submit(work(20)).id) == "done"                   # the engine goes on
    finally:
        again.stop()


class Clock:
    """An injectable engine clock (Unix seconds) that a test moves by hand."""

    def __init__(self, now: float = 1.7e9) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def clocked_queue(tmp_path: Path, clock: Clock) -> Iterator[tuple[JobQueue, JobStore]]:
    """A started queue on a job store in ``tmp_path`` whose time is ``clock``; stopped after."""
    store = JobStore(tmp_path / "jobs")
    q = JobQueue("cpu", store=store, clock=clock)
    q.start()
    try:
        yield q, store
    finally:
        q.stop()


def test_cleanup_by_age_keeps_queued_and_running_jobs(tmp_path):
    clock = Clock()
    with clocked_queue(tmp_path, clock) as (q, store):
        ended = []
        for day in range(3):                          # finished on days 0, 3 and 6
            clock.now = 1.7e9 + 3 * day * DAY
            ended.append(q.submit(work(day)).id)
            settle(q, ended[-1])
        long = q.submit(work(9, iterations=20000)).id
        running(q, long)
        clock.now = 1.7e9 + 7 * DAY + 1               # the first is a second past 7 days
        q.submit(work(5))                             # submitting cleans up
        with pytest.raises(JobNotFound, match="never existed on this engine, or it finished more than 7 days ago"):
            q.get(ended[0])
        assert not store.path(ended[0]).exists()
        assert all(q.get(i).state == "done" and store.path(i).exists() for i in ended[1:])
        clock.now += 30 * DAY                         # a month later: every ended job goes, not the running one
        q.submit(work(6))
        assert q.get(long).state == "running" and store.path(long).exists()
        assert not any(store.path(i).exists() for i in ended)
        q.cancel(long)
        settle(q, long)
    assert {j.id for j in JobQueue("cpu", store=store, clock=clock).jobs()} >= {long}


def test_cleanup_by_size_oldest_finished_first(tmp_path):
    clock = Clock()
    with clocked_queue(tmp_path, clock) as (q, store):
        ids = []
        for seed in range(4):
            clock.now += 60
            ids.append(q.submit(work(seed)).id)
            settle(q, ids[-1])
        size = max(store.size(i) for i in ids)
        q.max_bytes = int(2.5 * size)                 # room for two finished jobs
        q.submit(work(4))
        assert [i for i in ids if store.path(i).exists()] == ids[2:]
        q.max_bytes = 1                               # nothing fits: every finished job goes, no waiting or running one
        long = q.submit(work(9, iterations=20000)).id
        running(q, long)
        waiting = q.submit(work(8, image=png("blue", (300, 300)))).id
        q.submit(work(7))                             # submitting cleans up
        assert q.get(long).state == "running" and q.get(waiting).state == "queued"
        assert store.path(long).exists() and (store.path(waiting) / "image").exists()
        assert not any(store.path(i).exists() for i in ids)
        q.cancel_all()
        try:
            settle(q, long)
        except JobNotFound:                           # it ended and, as nothing fits, was cleaned up at once
            pass


def test_identical_jobs_in_flight_are_computed_once(tmp_path):
    q = JobQueue("cpu", store=JobStore(tmp_path / "jobs"))
    q.start()
    try:
        first = q.submit(work(1, iterations=20000))
        second = q.submit(work(1, iterations=20000))
        assert second is first and not second.cached and len(q.jobs()) == 1
        running(q, first.id)
        assert q.submit(work(1, iterations=20000)) is first               # running: still the same job
        other = q.submit(work(2, iterations=20000))
        assert other is not first
        assert {j.id for j in q.cancel_all()} == {first.id, other.id}
        assert settle(q, first.id) == "cancelled" and settle(q, other.id) == "cancelled"
        again = q.submit(work(1, iterations=20000))                      # cancelled: a new job
        assert again is not first
        q.cancel(again.id)
    finally:
        q.stop()


def test_cancelled_job_keeps_its_best_strokes(tmp_path):
    store = JobStore(tmp_path / "jobs")
    q = JobQueue("cpu", store=store)
    q.start()
    try:
        long = q.submit(work(1, iterations=20000)).id
        waiting = q.submit(work(2)).id
        running(q, long, 5)
        q.cancel(waiting)
        q.cancel(long)
        assert settle(q, long) == "cancelled"
        job = q.get(long)
        assert job.result["engine"]["stopped"] == "cancelled" and len(job.result["levels"]["2"]) == 2
        assert job.result["engine"]["iterations"] == job.iteration >= 5
        assert q.snapshot(job)["has_result"] and not q.snapshot(q.get(waiting))["has_result"]
        assert not q.submit(work(1, iterations=20000)).cached            # a cancelled result is no cache entry
    finally:
        q.cancel_all()
        q.stop()
    assert JobQueue("cpu", store=store).get(long).result == job.result     # kept on disk as well


# --- a full disk: checkpoints fail, the job and the engine go on ----------------------------------------

FULL_DISK = textwrap.dedent("""
    import json, resource, signal, sys, time
    from pathlib import Path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # over the limit, write() fails with EFBIG instead
    sys.path.insert(0, sys.argv[2])
    from test_jobs_durable import work, running, settle
    from clipasso_engine.optimize import LoopState
    from clipasso_engine.server.jobs import JobNotSaved, JobQueue
    from clipasso_engine.server.store import JobStore

    store = JobStore(Path(sys.argv[1]))
    q = JobQueue("cpu", store=store, checkpoint_seconds=0)
    q.start()
    job = q.submit(work(1, iterations=20000)).id
    ckpt = store.path(job) / "checkpoint.pt"
    running(q, job, 5)
    size = ckpt.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, hard))    # no checkpoint fits any more
    running(q, job, q.get(job).iteration + 3)                      # a write begun before the limit has landed
    kept = ckpt.read_bytes()
    running(q, job, q.get(job).iteration + 30)                     # 30 failed checkpoints later
    report = {"same": ckpt.read_bytes() == kept, "kept_at": LoopState.from_bytes(kept).iteration,
              "now_at": q.get(job).iteration, "state": q.get(job).state}
    try:
        q.submit(work(2, image=bytes(size)))
        report["new_job"] = "accepted"
    except JobNotSaved as exc:
        report["new_job"] = str(exc)
    report["folders"] = len(list(store.folder.iterdir()))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))         # space again: checkpoints resume
    running(q, job, q.get(job).iteration + 3)
    report["after"] = LoopState.from_bytes(ckpt.read_bytes()).iteration
    q.cancel(job)
    report["end"] = settle(q, job)
    q.stop()                                                       # the worker has written the job's end
    report["result"] = (store.path(job) / "result.json").exists()
    # no temp file left by the failed writes (looked at once the worker is done: while it runs, a write in
    # progress has its temp file for a moment)
    report["tmp_left"] = [p.name for p in store.path(job).iterdir() if p.name.endswith(".tmp")]
    print(json.dumps(report))
""")


def test_full_disk_fails_the_checkpoint_not_the_job(tmp_path):
    tests = Path(__file__).parent
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "jobs"), str(tests)],
                          capture_output=True, text=True, timeout=600, cwd=tests)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # kept_at: the last checkpoint that landed before the limit, which may be one step behind step 5
    assert report["same"] and report["kept_at"] >= 4 and report["now_at"] >= report["kept_at"] + 30, report
    assert report["state"] == "running" and report["tmp_left"] == [], report
    assert "could not save the job on disk" in report["new_job"] and report["folders"] == 1, report
    assert report["after"] > report["now_at"] and report["end"] == "cancelled" and report["result"], report
    assert "was not saved (" in proc.stderr and "File too large" in proc.stderr


def test_atomic_write_leaves_the_old_file_when_it_fails(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    write_atomic(target, b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


# --- real engines: killed, stopped, started again ----------------------------------------------------------

def post(engine, settings: dict, image: bytes) -> dict:
    r = requests.post(engine.url + "/v1/jobs", headers=engine.headers(), timeout=60,
                      json={"image": base64.b64encode(image).decode(), "settings": settings})
    assert r.status_code == 202, r.text
    return r.json()


def status(engine, job_id: str) -> dict:
    return engine.get(f"/v1/jobs/{job_id}?preview=false").json()


def test_engine_killed_mid_job_resumes_and_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    """SIGKILL a real engine mid-job; the next one goes on from the last checkpoint (not step 0)
    and ends with exactly the strokes of an uninterrupted in-process ``sketch()`` of the same seed."""
    monkeypatch.setenv("CLIPASSO_CHECKPOINT_SECONDS", "0")      # as the extension sets it: every step
    photo = coffee()
    long = dict(STEADY, iterations=60, seed=5)
    engine = start_engine(tmp_path)
    try:
        done = post(engine, dict(STEADY, iterations=3, seed=1), photo)["id"]
        wait_for(lambda: status(engine, done)["state"] == "done")
        done_result = engine.get(f"/v1/jobs/{done}/result").json()
        job = post(engine, long, photo)["id"]
        after = post(engine, dict(STEADY, iterations=4, seed=2), photo)["id"]
        wait_for(lambda: status(engine, job)["iteration"] >= 10, timeout=300, every=0.02)
        engine.proc.send_signal(signal.SIGKILL)
        engine.proc.wait(30)
    finally:
        stop_engine(engine)
    folder = engine.config_dir / "jobs"
    assert json.loads((folder / job / "state.json").read_text())["state"] == "running"
    killed_at = LoopState.from_bytes((folder / job / "checkpoint.pt").read_bytes()).iteration
    assert 9 <= killed_at < 60                             # the checkpoint before the step last seen, or later

    engine = start_engine(tmp_path)
    try:
        assert engine.get(f"/v1/jobs/{done}/result").json() == done_result           # an old id answers
        assert status(engine, after)["state"] == "queued"
        final = wait_for(lambda: (s := status(engine, job))["state"] == "done" and s, timeout=600)
        assert final["resumed_from"] == killed_at and final["iteration"] == 60
        resumed = engine.get(f"/v1/jobs/{job}/result").json()
        assert wait_for(lambda: status(engine, after)["state"] == "done", timeout=300)
        assert status(engine, after)["started"] >= final["finished"]                 # in their order
        assert f"resumed at step {killed_at}" in engine.log.read_text()
    finally:
        stop_engine(engine)
    whole = sketch(photo, SketchSettings(**TINY, **long, device="cpu"))
    assert resumed["levels"] == whole.to_json()["levels"]              # exact: the same floats
    assert resumed["history"] == whole.history and resumed["loss"] == whole.loss


def test_shutdown_over_http_pauses_jobs_and_cancel_all(tmp_path):
    photo = coffee()
    engine = start_engine(tmp_path, "--checkpoint-seconds", "3600")   # only the checkpoint taken when stopping
    try:
        job = post(engine, dict(STEADY, iterations=20000, seed=7), photo)["id"]
        queued = post(engine, dict(STEADY, iterations=5, seed=8), photo)["id"]
        twin = post(engine, dict(STEADY, iterations=20000, seed=7), photo)          # in flight: computed once
        assert twin["id"] == job and twin["cached"] is False
        wait_for(lambda: status(engine, job)["iteration"] >= 5, every=0.02)
        r = requests.post(engine.url + "/v1/shutdown", headers=engine.headers(), timeout=30)
        assert r.status_code == 202 and "stopping" in r.json()["detail"]
        assert engine.proc.wait(60) == 0
    finally:
        stop_engine(engine)
    folder = engine.config_dir / "jobs"
    paused_at = LoopState.from_bytes((folder / job / "checkpoint.pt").read_bytes()).iteration
    assert paused_at >= 5 and json.loads((folder / queued / "state.json").read_text())["state"] == "queued"

    engine = start_engine(tmp_path, "--checkpoint-seconds", "3600")
    try:
        wait_for(lambda: status(engine, job)["state"] == "running", every=0.02)
        assert status(engine, job)["resumed_from"] == paused_at
        assert status(engine, queued)["state"] == "queued"
        r = requests.delete(engine.url + "/v1/jobs", headers=engine.headers(), timeout=30)
        assert r.status_code == 200 and {j["id"] for j in r.json()["jobs"]} == {job, queued}
        final = wait_for(lambda: (s := status(engine, job))["state"] == "cancelled" and s)
        assert final["has_result"] and status(engine, queued)["state"] == "cancelled"
        best = engine.get(f"/v1/jobs/{job}/result").json()
        assert best["engine"]["stopped"] == "cancelled" and best["engine"]["iterations"] >= paused_at
        r = engine.get(f"/v1/jobs/{queued}/result")
        assert r.status_code == 409 and "before its first step" in r.json()["detail"]
        r = engine.get("/v1/jobs/0123456789abcdef0123456789abcdef")
        assert r.status_code == 404 and "finished more than 7 days ago" in r.json()["detail"]
    finally:
        stop_engine(engine)
