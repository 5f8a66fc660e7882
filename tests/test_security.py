"""Untrusted input must not hang, starve or flood the engine (docs/security.md).

Real processes over real loopback HTTP: one "hardened" engine for the module runs under a
desktop's 1,024-file limit, with a stand-in ``gs`` first on its PATH that records being run
(Pillow hands PostScript to whatever ``gs`` it finds). Each test names the finding it covers.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import select
import socket
import stat
import subprocess
import sys
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import torch
from PIL import Image

from clipasso_engine import clip_models
from clipasso_engine.server.guard import connection_cap, quiet_accept_errors
from test_clip_models import tiny_clip
from engine_support import QUICK, Engine, start_engine, stop_engine, wait_for

FILE_LIMIT = 1024
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n%%EOF\n"


def fake_ghostscript(folder: Path) -> Path:
    """A ``gs`` that writes its arguments to ``gs-ran`` beside it and fails."""
    folder.mkdir(parents=True, exist_ok=True)
    gs = folder / "gs"
    gs.write_text(f'#!/bin/sh\necho "$@" >> "{folder / "gs-ran"}"\nexit 1\n')
    gs.chmod(gs.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder / "gs-ran"


def desktop_file_limit() -> None:
    """In the engine's process, before it starts: at most 1,024 open files, soft and hard."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture(scope="module")
def ghostscript_log(tmp_path_factory) -> Path:
    return fake_ghostscript(tmp_path_factory.mktemp("fakebin"))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """The hardened engine's CLIPASSO_CLIP_DIR, with a small CLIP weights file in it."""
    folder = tmp_path_factory.mktemp("weights")
    torch.save(tiny_clip("RN").state_dict(), folder / "tiny.pt")
    return folder


@pytest.fixture(scope="module")
def hardened(tmp_path_factory, ghostscript_log, weights_dir) -> Engine:
    path = f"{ghostscript_log.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    eng = start_engine(tmp_path_factory.mktemp("hardened"), env={"PATH": path, "CLIPASSO_CLIP_DIR": str(weights_dir)},
                       preexec_fn=desktop_file_limit)
    yield eng
    stop_engine(eng)


def big_png(width: int, height: int) -> bytes:
    """A plain PNG of many pixels in few bytes: seconds to decode, kilobytes to send."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


# --- 1. PostScript never reaches Ghostscript ------------------------------------------------------

def test_eps_upload_is_refused_and_ghostscript_never_starts(hardened, ghostscript_log):
    r = hardened.post_job(EPS, QUICK)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("image:") and "PNG, JPEG, WebP, GIF (first frame), BMP, TIFF" in detail
    assert hardened.get("/v1/health").ok
    assert not ghostscript_log.exists(), ghostscript_log.read_text()


def test_cli_refuses_eps_without_starting_ghostscript(tmp_path):
    ran = fake_ghostscript(tmp_path / "bin")
    (tmp_path / "photo.eps").write_bytes(EPS)
    env = dict(os.environ, PATH=f"{ran.parent}{os.pathsep}{os.environ['PATH']}", CLIPASSO_CLIP="random:tiny-RN",
               CLIPASSO_SALIENCY_CLIP="random:tiny-ViT")
    done = subprocess.run([sys.executable, "-m", "clipasso_engine", "sketch", str(tmp_path / "photo.eps"),
                           "-o", str(tmp_path / "out.svg")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "not a readable image" in done.stderr and "PNG, JPEG, WebP" in done.stderr
    assert not ran.exists() and not (tmp_path / "out.svg").exists()


# --- 2. slow uploads never stop the API -------------------------------------------------------------

def test_health_answers_while_uploads_are_being_decoded(hardened):
    """Decoding runs off the event loop: health answers at an instant when the engine itself says
    two or more uploads are in the middle of decoding (a count the loop could never see above
    zero if decoding ran on it)."""
    slow = big_png(7000, 6000)                       # 42 MP: about a second to decode here
    body = {"image": base64.b64encode(slow).decode(), "settings": dict(QUICK, mask=True)}  # refused after decoding

    def upload(_: int) -> requests.Response:
        return requests.post(hardened.url + "/v1/jobs", json=body, headers=hardened.headers(), timeout=120)

    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(upload, range(8))
        seen = wait_for(lambda: (h := hardened.get("/v1/health").json())["decoding"] >= 2 and h, timeout=60, every=0.02)
        answers = list(answers)
    assert seen["status"] == "ok"
    assert {a.status_code for a in answers} <= {422, 503}
    assert any("no mask was sent" in a.json()["detail"] for a in answers)     # decoded, then refused
    assert hardened.get("/v1/health").json()["decoding"] == 0


# --- 3. idle connections without a token ----------------------------------------------------------

def test_a_thousand_idle_connections_do_not_take_the_engine_offline(hardened):
    """Under a 1,024-file limit, 1,100 connections that never send a byte: the engine caps its
    connections below the limit (closing the oldest idle ones), health still answers, and the
    log stays small (no traceback per refused accept)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"this test process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 4096, hard))
    log_before = hardened.log.stat().st_size
    idle: list[socket.socket] = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", hardened.port), timeout=10))
        r = requests.get(hardened.url + "/v1/health", headers=hardened.headers(), timeout=20)
        assert r.ok and r.json()["status"] == "ok"
        # the engine dropped connections beyond its cap: those read end-of-file at once
        poll = select.poll()
        for s in idle:
            poll.register(s, select.POLLIN)
        by_fd = {s.fileno(): s for s in idle}
        time.sleep(1.0)
        dropped = sum(1 for fd, _ in poll.poll(5000) if by_fd[fd].recv(1) == b"")
        assert dropped >= 1100 - connection_cap(FILE_LIMIT), dropped
    finally:
        for s in idle:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert requests.get(hardened.url + "/v1/health", headers=hardened.headers(), timeout=20).ok
    grown = hardened.log.stat().st_size - log_before
    text = hardened.log.read_text(errors="replace")
    assert grown < 20_000 and "Traceback" not in text, text[-3000:]
    assert hardened.proc.poll() is None


def test_an_accept_without_a_free_descriptor_is_one_warning_line(caplog):
    """What asyncio's own exception handler logs when accept() finds no descriptor left (it then
    pauses accepting for a second) reaches the engine's log as one warning, no traceback."""
    import asyncio
    import errno
    import logging

    quiet_accept_errors()
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO):
            try:
                raise OSError(errno.EMFILE, "Too many open files")
            except OSError as exc:
                loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": exc,
                                             "socket": "<listening socket>"})
            loop.call_exception_handler({"message": "something else broke", "exception": ValueError("other")})
    finally:
        loop.close()
    first, other = caplog.records
    assert first.levelname == "WARNING" and first.exc_info is None and "wait a second" in first.getMessage()
    assert "Traceback" not in caplog.text.split("something else broke")[0]
    assert other.levelname == "ERROR" and other.exc_info is not None       # other errors keep their traceback


def test_a_request_whose_headers_never_end_is_dropped(hardened):
    """Slow headers: a request line and half a header, then nothing. The engine closes the
    connection once the header deadline (10 s) has passed; the read here waits up to 30 s."""
    from clipasso_engine.server.guard import HEADER_TIMEOUT_S

    with socket.create_connection(("127.0.0.1", hardened.port), timeout=3 * HEADER_TIMEOUT_S) as slow:
        slow.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: " % hardened.port)
        assert slow.recv(100) == b""                         # closed by the engine, no answer
    assert hardened.get("/v1/health").ok


# --- 4. a photo is decoded no larger than a sketch needs --------------------------------------------

@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """A real 8000×7999 JPEG (64 MP) of about 1 MB."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    Image.new("RGB", (8000, 7999), (120, 30, 40)).save(path, "JPEG", quality=5)
    return path


def test_huge_jpeg_is_decoded_small_in_a_real_process(huge_jpeg):
    """Decoding the 64 MP JPEG whole would take ~200 MB (700 MB measured with the conversions);
    decoded at 1/4 size it takes a few tens."""
    probe = ("import resource, sys\n"
             "from clipasso_engine.image import load_image, photo_size\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "img = load_image(sys.argv[1])\n"
             "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
             "print(img.width * img.height, *photo_size(img), grown // 1024)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(huge_jpeg)], capture_output=True, text=True, timeout=120)
    pixels, width, height, grown_mb = map(int, out.stdout.split())
    assert (width, height) == (8000, 7999)
    assert pixels <= 4_000_000 and grown_mb < 150, (pixels, grown_mb)


def test_huge_jpeg_job_answers_in_the_photos_own_pixels(hardened, huge_jpeg):
    """The job runs on the small decode, but its result is measured in the 8000×7999 photo (the
    extension checks the result's size against the photo's)."""
    r = hardened.post_job(huge_jpeg.read_bytes(), QUICK)
    assert r.status_code == 202, r.text
    client = hardened.client()
    result = client.wait(r.json()["id"], poll=0.2, timeout=120)
    assert (result["width"], result["height"]) == (8000, 7999)
    xs = [p[0] for s in result["levels"]["4"] for p in s["points"]]
    ys = [p[1] for s in result["levels"]["4"] for p in s["points"]]
    assert max(xs) > 500 and max(ys) > 500                   # photo pixels, not the 224-px canvas or the decode
    assert min(xs) > -800 and max(xs) < 8800 and min(ys) > -800 and max(ys) < 8800


# --- 5. one weights file is one model; jobs name files only in the weights folders -------------------

def test_one_weights_file_under_many_spellings_is_loaded_once(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_models, "_CACHE", OrderedDict())
    (tmp_path / "w").mkdir()
    weights = tmp_path / "w" / "tiny.pt"
    torch.save(tiny_clip("RN").state_dict(), weights)
    (tmp_path / "link.pt").symlink_to(weights)
    os.link(weights, tmp_path / "hard.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    spellings = [str(weights), "w/tiny.pt", "./w/tiny.pt", f"{tmp_path}/w/./tiny.pt", f"{tmp_path}//w//tiny.pt",
                 f"{tmp_path}/w/../w/tiny.pt", str(tmp_path / "link.pt"), str(tmp_path / "hard.pt"), "~/w/tiny.pt"]
    models = [clip_models.get_clip(s) for s in spellings]
    assert all(m is models[0] for m in models)
    assert len(clip_models._CACHE) == 1

    # bounded by the weights' bytes: a second model pushes out the least recently used one
    monkeypatch.setattr(clip_models, "CACHE_BYTES", clip_models._model_bytes(models[0]) + 1)
    other = clip_models.get_clip("random:tiny-RN")
    assert list(clip_models._CACHE.values()) == [other]
    assert clip_models.get_clip(str(weights)) is not models[0]              # loaded again


def test_jobs_name_weights_files_only_in_the_weights_folders(hardened, photo, weights_dir, tmp_path):
    outside = tmp_path / "RN101.pt"
    torch.save(tiny_clip("RN").state_dict(), outside)
    answers = {}
    for spec in (str(outside), str(tmp_path / "missing.pt"), "/etc/passwd", "../../etc/shadow",
                 str(weights_dir / ".." / outside.name)):
        r = hardened.post_job(photo, dict(QUICK, clip=spec))
        assert r.status_code == 422, r.text
        answers[spec] = r.json()["detail"].replace(repr(spec), "SPEC")
    # one answer whatever the file: whether a path exists is never told
    assert len(set(answers.values())) == 1 and "--allow-model-paths" in answers["/etc/passwd"]
    r = hardened.post_job(photo, dict(QUICK, saliency=True, saliency_clip="/etc/hostname"))
    assert r.status_code == 422 and r.json()["detail"].startswith("settings.saliency_clip:")
    # a file in the weights folder is used
    r = hardened.post_job(photo, dict(QUICK, clip=str(weights_dir / "tiny.pt")))
    assert r.status_code == 202, r.text
    result = hardened.client().wait(r.json()["id"], poll=0.2, timeout=120)
    assert result["engine"]["clip_source"] == str((weights_dir / "tiny.pt").resolve())


def test_allow_model_paths_lets_a_job_name_any_file():
    from clipasso_engine.server import intake
    from clipasso_engine.server.models import JobRequest

    buf = io.BytesIO()
    Image.new("RGB", (48, 32), "white").save(buf, "PNG")
    body = JobRequest(image=base64.b64encode(buf.getvalue()).decode(), settings={"clip": "/elsewhere/RN101.pt"})
    assert intake.work_from_request(body, allow_model_paths=True).settings.clip == "/elsewhere/RN101.pt"
    with pytest.raises(intake.HTTPException):
        intake.work_from_request(body)


# --- 6. the CLI never overwrites its input, nor writes through a planted link -------------------------

TINY_CLI = ["--clip", "random:tiny-RN", "--saliency-clip", "random:tiny-ViT", "--device", "cpu",
            "--preset", "fast", "--iterations", "2", "--eval-every", "1", "--strokes", "4", "-q"]


@pytest.mark.parametrize("outputs, message", [
    (["-o", "p.png"], "-o p.png is the input photo"),
    (["-o", "s.svg", "--png", "p.png"], "--png p.png is the input photo"),
    (["-o", "s.svg", "--png", "hard.png"], "--png hard.png is the input photo"),          # a hard link to it
    (["-o", "x.out", "--json", "x.out"], "-o and --json both name x.out"),
    (["-o", "s-4.png", "--levels", "4,8", "--png", "s.png"], "-o and --png both name s-4.png"),
    (["-o", "m.png", "--mask", "--mask-image", "m.png"], "is --mask-image"),
])
def test_cli_refuses_outputs_that_collide(tmp_path, monkeypatch, capsys, outputs, message):
    from clipasso_engine.cli import main

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 48), (90, 60, 30)).save("p.png")
    Image.new("L", (64, 48), 255).save("m.png")
    os.link("p.png", "hard.png")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["sketch", "p.png", *outputs, *TINY_CLI]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_writes_through_new_exclusive_temp_files(tmp_path, monkeypatch, capsys):
    """A link planted at the old fixed temporary name is neither followed nor removed."""
    from clipasso_engine.cli import main

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 48), (90, 60, 30)).save("p.png")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / ".out.svg.partial").symlink_to(victim)
    assert main(["sketch", "p.png", "-o", "out.svg", *TINY_CLI]) == 0, capsys.readouterr().err
    assert victim.read_text() == "keep me" and (tmp_path / ".out.svg.partial").is_symlink()
    assert (tmp_path / "out.svg").read_text().startswith("<?xml")
    assert stat.S_IMODE((tmp_path / "out.svg").stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.svg.partial", "out.svg", "p.png", "victim.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- 7. a photo over the engine's limit is named as such, before it is sent -------------------------

def test_too_large_photo_is_named_before_sending(engine, tmp_path, monkeypatch, capsys):
    from clipasso_engine.cli import main
    from clipasso_engine.client import EngineError
    from clipasso_engine.limits import MAX_REQUEST_BYTES

    noise = os.urandom(2900 * 2900 * 3)                      # incompressible: a 25 MB PNG, 34 MB as base64
    Image.frombytes("RGB", (2900, 2900), noise).save(tmp_path / "big.png", compress_level=1)
    size = (tmp_path / "big.png").stat().st_size
    assert size * 4 / 3 > MAX_REQUEST_BYTES
    with pytest.raises(EngineError) as refused:
        engine.client().submit((tmp_path / "big.png").read_bytes(), QUICK)
    assert refused.value.status == 413
    assert "too large" in str(refused.value) and "up to 30 MB" in str(refused.value)

    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(engine.config_dir))
    assert main(["sketch", str(tmp_path / "big.png"), "-o", str(tmp_path / "out.svg"), "--engine", engine.url,
                 "--strokes", "4", "--preset", "fast", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the photo is too large" in err[0] and "30 MB" in err[0], err
    assert not (tmp_path / "out.svg").exists()


# --- 8. no NaN or infinity in JSON; non-finite weights refused at submit ------------------------------

@pytest.mark.parametrize("settings", ['{"geometric_weights": {"layer2": NaN}}', '{"geometric_weights": {"layer3": 1e308}}',
                                      '{"semantic_weight": Infinity}', '{"semantic_weight": 1e300}'])
def test_non_finite_weights_are_refused_at_submit(engine, photo, settings):
    body = '{"image": "%s", "settings": %s}' % (base64.b64encode(photo).decode(), settings)
    r = requests.post(engine.url + "/v1/jobs", data=body, timeout=30,
                      headers=engine.headers(**{"Content-Type": "application/json"}))
    assert r.status_code == 422, r.text
    assert "settings." in r.json()["detail"] and ("weight" in r.json()["detail"])


def strict_json(text: str):
    def refuse(word: str):
        raise ValueError(f"{word} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_non_finite_loss_reaches_status_events_and_results_as_null():
    """A loss that goes NaN or infinite mid-run (the queue's progress callback, as the worker
    calls it) shows as null in the status, its event-stream text and the strokes JSON."""
    from clipasso_engine.result import SketchResult
    from clipasso_engine.server.app import json_text
    from clipasso_engine.server.jobs import JobQueue
    from test_server_units import quick_work

    queue = JobQueue("cpu")                                   # not started: the job stays queued while we report
    job = queue.submit(quick_work(7))
    queue._progress(job, 0, float("nan"), [])
    assert queue.snapshot(job)["loss"] is None
    queue._progress(job, 1, float("inf"), [])
    status = strict_json(json_text(queue.snapshot(job)))
    assert status["loss"] is None and status["iteration"] == 2
    assert strict_json(json_text({"a": float("nan"), "b": [1.0, float("-inf")]})) == {"a": None, "b": [1.0, None]}
    result = SketchResult(strokes=[], levels={4: []}, width=8, height=8, loss=None, seed=0,
                          history=[{"iteration": 0, "loss": float("nan")}], level_meta={4: {}}, engine={})
    assert strict_json(json.dumps(result.to_json()))["history"] == [{"iteration": 0, "loss": None}]


# --- 9. lows ------------------------------------------------------------------------------------------

def test_cli_init_svg_with_more_strokes_than_the_cap_is_refused(tmp_path, monkeypatch, capsys):
    from clipasso_engine.cli import main
    from clipasso_engine.limits import MAX_STROKES

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 48), (90, 60, 30)).save("p.png")
    paths = "".join(f'<path d="M{i % 60} 1 C 5 5 9 9 {i % 50} 40" stroke="#000" fill="none"/>' for i in range(MAX_STROKES + 1))
    Path("many.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">{paths}</svg>')
    assert main(["sketch", "p.png", "-o", "out.svg", "--init-svg", "many.svg", *TINY_CLI]) == 2
    err = capsys.readouterr().err
    assert f"has {MAX_STROKES + 1} strokes" in err and f"at most {MAX_STROKES}" in err, err
    assert not Path("out.svg").exists()


def test_token_files_others_could_read_or_write_are_refused_and_never_printed(tmp_path, monkeypatch):
    from clipasso_engine.client import EngineClient, EngineError, read_token
    from clipasso_engine.server.auth import load_or_create_token

    monkeypatch.delenv("CLIPASSO_TOKEN", raising=False)
    folder = tmp_path / "config"
    folder.mkdir(mode=0o700)
    token = folder / "token"
    token.write_text("good-token_123\n")
    token.chmod(0o644)
    with pytest.raises(EngineError, match="can be read by other users") as refused:
        read_token(str(folder))
    assert "good-token_123" not in str(refused.value)
    token.chmod(0o600)
    assert read_token(str(folder)) == "good-token_123"

    secret = "tok en\r\nX-Injected: 1\x1b]0;pwned\x07"
    token.write_text(secret)
    for call in (lambda: read_token(str(folder)), lambda: load_or_create_token(folder)):
        with pytest.raises((EngineError, ValueError), match="does not hold a valid token") as refused:
            call()
        assert "pwned" not in str(refused.value) and "Injected" not in str(refused.value)
    with pytest.raises(EngineError, match="not a valid token") as refused:
        EngineClient("http://127.0.0.1:9", token=secret)
    assert "pwned" not in str(refused.value)
    monkeypatch.setenv("CLIPASSO_TOKEN", secret)
    with pytest.raises(EngineError, match="CLIPASSO_TOKEN does not hold a valid") as refused:
        read_token(str(folder))
    assert "pwned" not in str(refused.value)
    monkeypatch.delenv("CLIPASSO_TOKEN")

    if os.geteuid() != 0:
        pytest.skip("handing a file to another user needs root")
    token.write_text("planted-by-someone-else\n")
    token.chmod(0o600)
    os.chown(token, 65534, 65534)
    for call in (lambda: read_token(str(folder)), lambda: load_or_create_token(folder)):
        with pytest.raises((EngineError, ValueError), match="belongs to another user"):
            call()


def test_a_repeated_log_line_is_written_a_few_times_then_counted(tmp_path):
    """Finding 3's log flood: the same message 10,000 times makes 5 lines, and the next one
    after the window says how many were held back."""
    import logging

    from clipasso_engine.server.guard import RepeatFilter

    log = logging.getLogger("clipasso.test.flood")
    log.propagate = False
    handler = logging.FileHandler(tmp_path / "engine.log")
    repeat = RepeatFilter(burst=5, window_s=60.0)
    handler.addFilter(repeat)
    log.addHandler(handler)
    try:
        for _ in range(10_000):
            log.error("socket.accept() out of system resource", exc_info=(OSError, OSError(24, "Too many open files"), None))
        log.error("another message")
        for state in repeat._seen.values():
            state[0] -= 61.0                                  # the minute is over
        log.error("socket.accept() out of system resource")
    finally:
        log.removeHandler(handler)
        handler.close()
    lines = (tmp_path / "engine.log").read_text().splitlines()
    assert sum("out of system resource" in line for line in lines) == 6 and "another message" in lines
    assert "[9995 more like this were not logged]" in lines[-1]
    assert (tmp_path / "engine.log").stat().st_size < 5_000
