"""The engine service's parts without HTTP: token file, Host names, the job queue's bounds."""

from __future__ import annotations

import dataclasses
import io
import socket
import time

import pytest
from PIL import Image

from clipasso_engine.cli import main
from clipasso_engine.server.auth import allowed_hosts, is_loopback, load_or_create_token
from clipasso_engine.server.jobs import JobNotFound, JobQueue, Work
from clipasso_engine.settings import SketchSettings


def test_token_is_created_once_private_and_kept(tmp_path):
    folder = tmp_path / "config"
    token = load_or_create_token(folder)
    assert len(token) >= 32 and token == load_or_create_token(folder)
    path = folder / "token"
    assert path.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    path.chmod(0o644)                                  # loosened by someone: tightened again
    assert load_or_create_token(folder) == token and path.stat().st_mode & 0o777 == 0o600
    path.write_text("")
    with pytest.raises(ValueError, match="delete it"):
        load_or_create_token(folder)


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"}
    assert "192.168.1.5:9000" in allowed_hosts("192.168.1.5", 9000)
    wildcard = allowed_hosts("0.0.0.0", 8765, ["GPUbox.lan"])
    assert "gpubox.lan:8765" in wildcard and "0.0.0.0:8765" not in wildcard
    assert "[fe80::1]:8765" in allowed_hosts("fe80::1", 8765)
    assert "localhost" in allowed_hosts("127.0.0.1", 80)
    tunnel = allowed_hosts("127.0.0.1", 8765, ["localhost:9000", "[::1]:9001"])     # ssh -L 9000:127.0.0.1:8765
    assert {"localhost:9000", "[::1]:9001", "localhost:8765"} <= tunnel and "localhost:9000:8765" not in tunnel
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "localhost.evil", "example.com"))


def test_serve_on_a_busy_port_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("clipasso: error: cannot listen on 127.0.0.1:") and "--port" in err


def test_serve_beyond_loopback_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(tmp_path))
    with socket.socket() as s:                         # the port is taken: nothing is ever exposed here
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--host", "0.0.0.0", "--port", str(port), "--device", "cpu"]) == 2
    first, last = capsys.readouterr().err.strip().splitlines()
    assert first.startswith("clipasso: warning: listening on 0.0.0.0") and "token" in first
    assert last.startswith("clipasso: error: cannot listen on 0.0.0.0:")


def png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), color).save(buf, "PNG")
    return buf.getvalue()


def quick_work(seed: int) -> Work:
    settings = SketchSettings(clip="random:tiny-RN", saliency_clip="random:tiny-ViT", preset="fast", iterations=1,
                              strokes=2, aug_bank=0, augmentations=0, saliency=False, seed=seed)
    return Work(image=png("white"), settings=settings, width=48, height=32)


def finish(queue: JobQueue, job_id: str) -> str:
    deadline = time.monotonic() + 120
    while (state := queue.get(job_id).state) in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return state


def test_finished_jobs_and_cached_results_are_bounded():
    queue = JobQueue("cpu", keep_jobs=2, cache_size=1, keep_seconds=3600)
    queue.start()
    try:
        ids = [queue.submit(quick_work(seed)).id for seed in range(3)]
        assert [finish(queue, i) for i in ids] == ["done"] * 3
        newest = queue.submit(quick_work(3)).id               # submitting prunes: 2 finished jobs stay
        with pytest.raises(JobNotFound, match="kept for 60 min"):
            queue.get(ids[0])
        assert {j.id for j in queue.jobs()} == {ids[1], ids[2], newest}
        assert queue.get(ids[2]).work is None                   # finished jobs let go of the photo
        finish(queue, newest)
        assert queue.submit(quick_work(3)).cached               # the one cached result: the latest
        assert not queue.submit(quick_work(2)).cached
    finally:
        queue.stop()


def test_old_results_expire():
    queue = JobQueue("cpu", keep_seconds=0.5)
    queue.start()
    try:
        first = queue.submit(quick_work(0)).id
        finish(queue, first)
        assert queue.submit(quick_work(0)).cached
        time.sleep(0.6)
        assert not queue.submit(quick_work(0)).cached           # too old: computed again
        with pytest.raises(JobNotFound):
            queue.get(first)
    finally:
        queue.stop()


def test_stop_cancels_waiting_and_running_jobs():
    queue = JobQueue("cpu")
    queue.start()
    work = quick_work(0)
    running = queue.submit(dataclasses.replace(work, settings=work.settings.model_copy(update={"iterations": 20000})))
    while queue.get(running.id).iteration < 1:
        time.sleep(0.05)
    waiting = queue.submit(quick_work(1))
    queue.stop()
    assert running.state == "cancelled" and waiting.state == "cancelled"


def test_result_json_round_trip():
    """What the engine sends back (``to_json``) rebuilds the same SketchResult (``clipasso sketch --engine``)."""
    from clipasso_engine import sketch
    from clipasso_engine.result import SketchResult

    work = quick_work(0)
    result = sketch(work.image, work.settings.model_copy(update={"levels": [2, 3]}))
    again = SketchResult.from_json(result.to_json())
    assert again.to_json() == result.to_json()
    assert again.strokes == result.strokes and again.to_svg() == result.to_svg()
