"""The engine service over real loopback HTTP: a real ``clipasso serve`` process, real requests.

One engine process serves the whole session (the ``engine`` fixture of conftest.py). It runs tiny random CLIP towers, so jobs take a second; the jobs check the service's
machinery (queue, cancel, cache, limits, auth), never sketch quality.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from clipasso_engine.cli import main
from clipasso_engine.client import EngineError
from clipasso_engine.strokes import Stroke
from clipasso_engine.svg import svg_to_strokes

from engine_support import LONG, MAX_QUEUE, QUICK, Engine, wait_for
from extension_support import SHARED, free_port

def check_result(result: dict, strokes: int, width: int = 150, height: int = 100) -> None:
    """The strokes JSON holds ``strokes`` valid strokes that start inside the photo."""
    assert (result["width"], result["height"]) == (width, height)
    main_level = result["levels"][str(strokes)]
    parsed = [Stroke.from_json(s) for s in main_level]
    assert len(parsed) == strokes
    margin = 0.25 * max(width, height)          # control points may wander a little past the border
    for s in parsed:
        assert 0 <= s.points[0][0] <= width and 0 <= s.points[0][1] <= height
        assert all(-margin <= x <= width + margin and -margin <= y <= height + margin for x, y in s.points)
    assert result["engine"]["random_weights"] is True


def start_long_job(engine: Engine, photo: bytes, seed: int) -> str:
    """A job that runs until cancelled; returns once it is past its first step."""
    job = engine.post_job(photo, dict(LONG, seed=seed)).json()["id"]
    wait_for(lambda: engine.get(f"/v1/jobs/{job}?preview=false").json()["iteration"] >= 1)
    return job


# --- a job end to end ------------------------------------------------------------------------------

def test_job_runs_to_done_with_valid_strokes(engine, photo):
    settings = dict(QUICK, iterations=3, strokes=5, saliency=True)        # saliency on: the full start
    r = engine.post_job(photo, settings)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    client = engine.client()
    seen: list[dict] = []
    result = client.wait(job, on_progress=seen.append, poll=0.1, timeout=120)
    check_result(result, 5)
    status = engine.get(f"/v1/jobs/{job}").json()
    assert status["state"] == "done" and status["iteration"] == 3 and status["progress"] == 1.0
    assert status["strokes"] == [5] and status["clip"] == "random:tiny-RN"
    final, w, h = svg_to_strokes(status["preview_svg"])                  # the finished sketch
    assert (w, h) == (150, 100) and len(final) == 5
    assert seen[-1]["state"] == "done"
    assert engine.get(f"/v1/jobs/{job}/result").json() == result


def test_events_stream_progress_until_done(engine, photo):
    job = engine.post_job(photo, dict(QUICK, iterations=6, seed=7)).json()["id"]
    statuses = list(engine.client().events(job))
    assert statuses[-1]["state"] == "done"
    iterations = [s["iteration"] for s in statuses]
    assert iterations == sorted(iterations) and iterations[-1] == 6
    previews = [s["preview_svg"] for s in statuses if s["preview_svg"]]
    assert previews and all(len(svg_to_strokes(p)[0]) == 4 for p in previews)


def test_raw_sse_format(engine, photo):
    job = engine.post_job(photo, dict(QUICK, seed=8)).json()["id"]
    with requests.get(f"{engine.url}/v1/jobs/{job}/events", headers=engine.headers(), stream=True, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines(decode_unicode=True)]
    events = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]
    assert "event: status" in lines and events[-1]["state"] == "done"


def test_repeated_job_is_answered_from_the_cache(engine, photo):
    settings = dict(QUICK, seed=11)
    first = engine.post_job(photo, settings).json()
    result = engine.client().wait(first["id"], poll=0.1, timeout=120)
    again = engine.post_job(photo, settings).json()
    assert again["cached"] is True and again["state"] == "done" and again["id"] != first["id"]
    assert engine.get(f"/v1/jobs/{again['id']}/result").json() == result
    other_seed = engine.post_job(photo, dict(settings, seed=12)).json()
    assert other_seed["cached"] is False


def test_result_of_unfinished_or_unknown_job(engine, photo):
    job = start_long_job(engine, photo, seed=21)
    r = engine.get(f"/v1/jobs/{job}/result")
    assert r.status_code == 409 and "running" in r.json()["detail"]
    engine.client().cancel(job)
    r = engine.get("/v1/jobs/no-such-job")
    assert r.status_code == 404 and "no job no-such-job here: it never existed on this engine" in r.json()["detail"]


# --- cancel ------------------------------------------------------------------------------------------

def test_photo_of_a_job_while_it_holds_it(engine, photo):
    job = start_long_job(engine, photo, seed=61)
    r = engine.get(f"/v1/jobs/{job}/image")
    assert r.status_code == 200 and r.content == photo and r.headers["x-content-type-options"] == "nosniff"
    engine.client().cancel(job)
    wait_for(lambda: engine.get(f"/v1/jobs/{job}?preview=false").json()["state"] == "cancelled")
    gone = engine.get(f"/v1/jobs/{job}/image")
    assert gone.status_code == 409 and "photo is no longer kept" in gone.json()["detail"]
    assert engine.get("/v1/jobs/" + "0" * 32 + "/image").status_code == 404


def test_cancel_running_job_stops_within_an_iteration(engine, photo):
    job = start_long_job(engine, photo, seed=31)
    at_cancel = requests.delete(f"{engine.url}/v1/jobs/{job}", headers=engine.headers(), timeout=30).json()
    assert at_cancel["cancel_requested"] is True
    final = wait_for(lambda: (s := engine.get(f"/v1/jobs/{job}?preview=false").json())["state"] == "cancelled" and s,
                     timeout=30)
    assert final["iteration"] <= at_cancel["iteration"] + 2          # the step in flight, at most one more
    with pytest.raises(EngineError, match="cancelled"):
        engine.client().wait(job)
    assert final["has_result"]                                       # "good enough": the best strokes so far
    best = engine.get(f"/v1/jobs/{job}/result").json()
    assert best["engine"]["stopped"] == "cancelled" and best["engine"]["iterations"] == final["iteration"]
    check_result(best, 4)


def test_cancel_queued_job_at_once_and_queue_limit(engine, photo):
    running = start_long_job(engine, photo, seed=41)
    queued = [engine.post_job(photo, dict(QUICK, seed=1000 + i)) for i in range(MAX_QUEUE)]
    assert all(r.status_code == 202 for r in queued), [r.text for r in queued]
    full = engine.post_job(photo, dict(QUICK, seed=999))
    assert full.status_code == 429 and "jobs waiting" in full.json()["detail"]
    ids = [r.json()["id"] for r in queued]
    assert engine.get(f"/v1/jobs/{ids[3]}").json()["queue_position"] == 3
    client = engine.client()
    for job in ids:
        assert client.cancel(job)["state"] == "cancelled"            # no waiting: queued jobs end at once
    client.cancel(running)
    wait_for(lambda: engine.get(f"/v1/jobs/{running}").json()["state"] == "cancelled", timeout=30)
    assert engine.get("/v1/health").json()["queued"] == 0


# --- failures -----------------------------------------------------------------------------------------

def test_failing_job_reports_missing_weights_and_engine_carries_on(engine, photo, tmp_path, monkeypatch):
    r = engine.post_job(photo, dict(QUICK, clip="RN101", seed=51))
    assert r.status_code == 202
    with pytest.raises(EngineError) as failure:
        engine.client().wait(r.json()["id"], poll=0.1, timeout=60)
    message = str(failure.value)
    assert "RN101.pt" in message and "clipasso models --download RN101" in message
    assert failure.value.job["state"] == "failed"
    assert failure.value.kind == "weights" and failure.value.detail["missing"] == ["RN101.pt"]   # by type, not text
    models = engine.get("/v1/models").json()           # the defaults here are random towers: nothing missing
    assert models["missing"] == [] and models["weights_folder"]
    health = engine.get("/v1/health").json()
    assert health["status"] == "ok" and health["pid"] == engine.proc.pid      # what Engine status restarts by
    after = engine.post_job(photo, dict(QUICK, seed=52)).json()["id"]
    check_result(engine.client().wait(after, poll=0.1, timeout=120), 4)


# --- refusals: each a 4xx with a message a person can act on ------------------------------------------------

IN_PROCESS_TOKEN = "in-process-token"


@pytest.fixture(scope="module")
def app():
    """The engine's app in this process (FastAPI's TestClient, no socket): for refusals that
    depend on the app, not on the process or the network. No default headers: each call says
    what it sends."""
    from fastapi.testclient import TestClient

    from clipasso_engine.server.app import create_app
    from clipasso_engine.server.jobs import JobQueue

    with TestClient(create_app(JobQueue("cpu"), IN_PROCESS_TOKEN, frozenset({"testserver"}))) as client:
        yield client


def authorized(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {IN_PROCESS_TOKEN}", **extra}

def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width × height`` pixels, with almost no pixel data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def routes_of(routes: list, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route in ``routes``, into included routers and mounts."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)          # recent FastAPI includes routers lazily
        if inner is not None:
            found += routes_of(inner.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
        elif getattr(route, "methods", None):
            found += [(m, prefix + route.path) for m in sorted(route.methods) if m != "HEAD"]
        elif getattr(route, "routes", None):
            found += routes_of(route.routes, prefix + route.path)
    return found


def v1_calls() -> list[tuple[str, str]]:
    """(method, path) of every /v1 route of the app, path parameters filled in: a new route is
    checked without anyone adding it here."""
    from clipasso_engine.server.app import create_app
    from clipasso_engine.server.jobs import JobQueue

    app = create_app(JobQueue("cpu"), "unused", frozenset())
    calls = [(m, path) for m, path in routes_of(app.routes) if path == "/v1" or path.startswith("/v1/")]
    documented = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= set(calls), documented - set(calls)       # the walk found every route
    return [(m, re.sub(r"\{[^}]*\}", "x", path)) for m, path in calls]


def test_auth_is_required_on_every_v1_call(app):
    calls = v1_calls()
    assert {("GET", "/v1/health"), ("POST", "/v1/jobs"), ("DELETE", "/v1/jobs/x"), ("GET", "/v1/jobs/x/events")} <= set(calls)
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {IN_PROCESS_TOKEN}"}):
            r = app.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert "token" in r.json()["detail"]
    assert app.get("/v1/health", headers=authorized()).status_code == 200


def test_token_is_checked_before_the_body_is_read(engine):
    """No token: refused before the body is buffered or parsed (not 422 for bad JSON, not 413)."""
    for method, path in v1_calls():
        r = requests.request(method, engine.url + path, data=b'{"image": ', timeout=30,
                             headers={"Content-Type": "application/json"})
        assert r.status_code == 401 and "needs its token" in r.json()["detail"], (method, path, r.text)
    big = b'{"image": "' + b"A" * (31 * 2**20) + b'"}'
    try:
        r = requests.post(engine.url + "/v1/jobs", data=big, timeout=60, headers={"Content-Type": "application/json"})
        assert r.status_code == 401
    except requests.ConnectionError:
        pass                                          # refused and closed before the upload ended: as good
    assert engine.get("/v1/health").ok


def test_host_header_must_name_the_loopback_engine(engine):
    for host in (f"evil.example:{engine.port}", "127.0.0.1", f"127.0.0.1:{engine.port + 1}", f"localhost.evil:{engine.port}"):
        for path in ("/v1/health", "/"):
            r = requests.get(engine.url + path, headers=engine.headers(Host=host), timeout=30)
            assert r.status_code == 421 and "does not answer to Host" in r.json()["detail"], (host, path)
    for host in (f"localhost:{engine.port}", f"[::1]:{engine.port}", f"127.0.0.1:{engine.port}"):
        assert requests.get(engine.url + "/v1/health", headers=engine.headers(Host=host), timeout=30).status_code == 200


def test_no_cors_for_other_origins(engine):
    r = requests.options(engine.url + "/v1/jobs", timeout=30, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    r = requests.get(engine.url + "/v1/health", headers=engine.headers(Origin="https://evil.example"), timeout=30)
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


def test_oversized_upload_is_refused_with_413(engine):
    big = b'{"image": "' + b"A" * (31 * 2**20) + b'"}'
    r = requests.post(engine.url + "/v1/jobs", data=big, timeout=60,
                      headers=engine.headers(**{"Content-Type": "application/json"}))
    assert r.status_code == 413 and "30 MB" in r.json()["detail"]

    def chunked():                                   # no Content-Length: counted while reading
        for _ in range(32):
            yield b"A" * 2**20
    r = requests.post(engine.url + "/v1/jobs", data=chunked(), timeout=60,
                      headers=engine.headers(**{"Content-Type": "application/json"}))
    assert r.status_code == 413
    assert engine.get("/v1/health").ok


@pytest.mark.parametrize("image, message", [
    (png_header_only(60000, 60000), "too large"),                  # a decompression bomb, refused from its header
    (b"this is not an image" * 50, "not a readable image"),
    (png_header_only(4, 4), "at least 8 pixels"),
])
def test_bad_images_are_refused_with_422(app, image, message):
    r = app.post("/v1/jobs", json={"image": base64.b64encode(image).decode(), "settings": QUICK}, headers=authorized())
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert r.json()["detail"].startswith("image:")


@pytest.mark.parametrize("body, message", [
    ({"image": "not base64 at all!"}, "not valid base64"),
    ({"settings": {"strokes": 0}}, "settings.strokes"),
    ({"settings": {"iterations": 10**9}}, "settings.iterations"),
    ({"settings": {"preset": "turbo"}}, "settings.preset"),
    ({"settings": {"preset": ["fast"], "device": {"a": 1}}}, "settings.preset"),
    ({"settings": {"stroke": 8}}, "settings.stroke: Extra inputs are not permitted"),
    ({"locked": [3]}, "locked: indices [3]"),
    ({"init_strokes": [{"points": [[0, 0], [1, 1], [2, 2]]}]}, "init_strokes.0.points"),
    ({"init_strokes": [{"points": [[0, 0], [1, 1], [2, 2], [3, 3]], "color": "red"}]}, "init_strokes.0: Value error, stroke color must look like '#rrggbb'"),
    ({"init_strokes": [{"points": [[0, 0], [1, 1], [2, 2], [3, 3]], "width": -1}]}, "init_strokes.0: Value error, stroke width must be"),
    ({"settings": {"mask": True}}, "no mask was sent"),
    ({"settings": {"strokes": 200, "seeds": 8}}, "the engine takes up to 1024"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_bad_requests_are_refused_with_422(app, photo, body, message):
    payload = {"image": base64.b64encode(photo).decode(), **body}
    r = app.post("/v1/jobs", json=payload, headers=authorized())
    assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_invalid_json_is_refused_with_422(app):
    r = app.post("/v1/jobs", content=b'{"image": ', headers=authorized(**{"Content-Type": "application/json"}))
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]


# --- load ------------------------------------------------------------------------------------------------

def test_100_concurrent_requests_all_answered_no_job_lost(engine, photo):
    jobs, checks = 12, 88
    s = requests.Session()
    s.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))

    def submit(i: int) -> requests.Response:
        payload = {"image": base64.b64encode(photo).decode(), "settings": dict(QUICK, seed=2000 + i % 10)}
        return s.post(engine.url + "/v1/jobs", json=payload, headers=engine.headers(), timeout=120)

    def health(_: int) -> requests.Response:
        return s.get(engine.url + "/v1/health", headers=engine.headers(), timeout=120)

    work = [(submit, i) for i in range(jobs)] + [(health, i) for i in range(checks)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda fa: fa[0](fa[1]), work))
    assert [r.status_code for r in answers[:jobs]] == [202] * jobs, [r.text for r in answers[:jobs]]
    assert all(r.status_code == 200 and r.json()["status"] == "ok" for r in answers[jobs:])
    client = engine.client()
    for r in answers[:jobs]:                         # seeds repeat (i % 10): the cache may answer some
        check_result(client.wait(r.json()["id"], poll=0.2, timeout=300), 4)
    listed = {j["id"] for j in engine.get("/v1/jobs").json()["jobs"]}
    assert {r.json()["id"] for r in answers[:jobs]} <= listed


def test_engine_connections_use_tcp_nodelay():
    """The engine's listening socket makes asyncio set TCP_NODELAY on every connection it accepts
    (as uvicorn serves it): without it every small response on a kept-alive connection waits
    ~40 ms for the client's delayed ACK (benchmarks/service.py measures the latency)."""
    from clipasso_engine.server.run import _bind

    async def accepted_nodelay() -> int:
        seen: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_connection(_reader, writer):
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=_bind("127.0.0.1", 0))
        async with server:
            _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            flag = await asyncio.wait_for(seen, 30)
            writer.close()
        return flag

    assert asyncio.run(accepted_nodelay()) != 0


# --- the rest of the API ---------------------------------------------------------------------------------

def test_health_models_list_and_openapi(engine):
    h = engine.get("/v1/health").json()
    assert h["device"] == "cpu" and h["clip"] == "random:tiny-RN" and h["max_queued"] == MAX_QUEUE
    m = engine.get("/v1/models").json()
    assert m["saliency_clip"] == "random:tiny-ViT"
    assert {w["name"] for w in m["weights"]} >= {"RN101", "ViT-B-32"}
    assert "random:tiny-RN" in m["loaded"]
    jobs = engine.get("/v1/jobs").json()["jobs"]
    assert all(j["preview_svg"] is None for j in jobs)
    created = [j["created"] for j in jobs]
    assert created == sorted(created, reverse=True)
    spec = requests.get(engine.url + "/openapi.json", timeout=30).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/result",
            "/v1/health", "/v1/models"} <= set(spec["paths"])
    assert "SketchSettings" in spec["components"]["schemas"]


def test_preview_page_is_static_and_locked_down(engine):
    r = requests.get(engine.url + "/", timeout=30)
    assert r.status_code == 200 and "clipasso engine" in r.text
    assert engine.token not in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    # every page and file of the site, under any name, carries the same headers
    for path in ("/", "/static/index.html", "/static/app.js", "/static/style.css", "/static/nothing-here", "/openapi.json"):
        r = requests.get(engine.url + path, timeout=30)
        assert r.status_code == (404 if "nothing" in path else 200), path
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff", path


def test_no_api_docs_pages_that_load_scripts_from_elsewhere(engine):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert requests.get(engine.url + path, timeout=30).status_code == 404, path
    assert "/v1/jobs" in requests.get(engine.url + "/openapi.json", timeout=30).json()["paths"]
    for name in ("index.html", "app.js", "style.css"):    # nothing from another origin on the page
        text = (Path(__file__).parents[1] / "clipasso_engine" / "server" / "static" / name).read_text()
        assert "http://" not in text.replace("http://127.0.0.1", "") and "https://" not in text, name


def test_token_file_is_private(engine):
    token_file = engine.config_dir / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert engine.config_dir.stat().st_mode & 0o077 == 0
    assert len(engine.token) >= 32


# --- the clients -----------------------------------------------------------------------------------------

def test_cli_sketch_through_the_engine(engine, photo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(engine.config_dir))       # where the CLI finds the token
    src = tmp_path / "photo.png"
    src.write_bytes(photo)
    out, js = tmp_path / "remote.svg", tmp_path / "remote.json"
    args = ["sketch", str(src), "-o", str(out), "--json", str(js), "--engine", engine.url, "--strokes", "3",
            "--preset", "fast", "--iterations", "2", "--aug-bank", "0", "--augmentations", "1", "--seed", "61"]
    assert main(args) == 0
    strokes, w, h = svg_to_strokes(out.read_bytes())
    assert (w, h) == (150, 100) and len(strokes) == 3
    result = json.loads(js.read_text())
    check_result(result, 3)
    assert result["engine"]["clip"] == "random:tiny-RN"          # the engine's default, not sent by the CLI
    assert "wrote" in capsys.readouterr().err


def test_cli_engine_errors_are_one_line(engine, photo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(engine.config_dir))
    src = tmp_path / "photo.png"
    src.write_bytes(photo)
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["sketch", str(src), "-o", str(tmp_path / "x.svg"), "--engine", dead, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipasso: error: engine") and "clipasso serve" in err and "\n" not in err
    assert main(["sketch", str(src), "-o", str(tmp_path / "x.svg"), "--engine", engine.url, "-q",
                 "--clip", "RN101", "--iterations", "2", "--seed", "62"]) == 2
    assert "RN101.pt" in capsys.readouterr().err
    assert not (tmp_path / "x.svg").exists()


def test_standalone_client_copy_works_without_site_packages(engine, photo, tmp_path):
    """The extension imports a copy of client.py in a Python without the engine or any
    third-party package: run that copy with -S -I (no site-packages, no environment)."""
    for source, copy in SHARED.items():   # as install.py lays them out
        shutil.copy(Path(__file__).parents[1] / "clipasso_engine" / source, tmp_path / copy)
    (tmp_path / "photo.png").write_bytes(photo)
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import clipasso_client as client
        engine = client.EngineClient({engine.url!r}, client.read_token({str(engine.config_dir)!r}))
        assert engine.health()["status"] == "ok"
        job = engine.submit(open({str(tmp_path / 'photo.png')!r}, "rb").read(), {dict(QUICK, seed=71)!r})
        result = engine.wait(job, poll=0.1, timeout=120)
        third_party = sorted(m for m in sys.modules if m.split(".")[0] not in {{*sys.stdlib_module_names, "__main__"}})
        print(json.dumps({{"strokes": len(result["levels"]["4"]), "third_party": third_party}}))
    """)
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report == {"strokes": 4, "third_party": sorted(copy[: -len(".py")] for copy in SHARED.values())}
