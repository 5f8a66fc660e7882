"""The engine service's parts without HTTP: token file, Host names, the job queue's bounds."""

from __future__ import annotations

import base64
import dataclasses
import io
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from fastapi import HTTPException

from clipasso_engine import image
from clipasso_engine.cli import main
from clipasso_engine.server import intake
from clipasso_engine.server.auth import allowed_hosts, is_loopback, load_or_create_token
from clipasso_engine.server.jobs import JobNotFound, JobQueue, Work
from clipasso_engine.server.models import JobRequest
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


def test_a_second_engine_starting_meanwhile_gets_the_same_whole_token(tmp_path, monkeypatch):
    """Two engines start at once: the second looks while the first is making the token. It must
    find no file or the whole token, never an empty file; both end up with one token."""
    from clipasso_engine.server import auth

    folder, real, calls, rival = tmp_path / "config", auth.secrets.token_urlsafe, [], []

    def token_with_a_rival(n: int) -> str:
        calls.append(n)
        if len(calls) == 1:                            # the rival starts while the first is at work
            rival.append(load_or_create_token(folder))
        return real(n)

    monkeypatch.setattr(auth.secrets, "token_urlsafe", token_with_a_rival)
    first = load_or_create_token(folder)
    assert first == rival[0] and len(first) >= 32
    assert sorted(p.name for p in folder.iterdir()) == ["token"]        # no temporary file left
    assert (folder / "token").stat().st_mode & 0o777 == 0o600


def test_config_folder_is_made_private(tmp_path, monkeypatch):
    from clipasso_engine import client
    from clipasso_engine.server import auth

    folder = tmp_path / "config"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    load_or_create_token(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    # one rule for the folder, the extension's (client.py): the engine follows it even where it differs
    monkeypatch.setattr(client, "config_dir", lambda: str(tmp_path / "the-clients-choice"))
    assert auth.config_dir() == tmp_path / "the-clients-choice"


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
        with pytest.raises(JobNotFound, match="never existed on this engine, or it finished more than 60 min ago"):
            queue.get(ids[0])
        assert {j.id for j in queue.jobs()} == {ids[1], ids[2], newest}
        assert queue.get(ids[2]).work is None                   # finished jobs let go of the photo
        finish(queue, newest)
        assert queue.submit(quick_work(3)).cached               # the one cached result: the latest
        assert not queue.submit(quick_work(2)).cached
    finally:
        queue.stop()


def test_old_results_expire():
    now = [1.7e9]                                                # the queue's clock, moved by hand
    queue = JobQueue("cpu", keep_seconds=600, clock=lambda: now[0])
    queue.start()
    try:
        first = queue.submit(quick_work(0)).id
        finish(queue, first)
        now[0] += 599
        assert queue.submit(quick_work(0)).cached
        now[0] += 2
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


def request(**settings) -> JobRequest:
    return JobRequest(image=base64.b64encode(png("white")).decode(), settings=settings)


def test_decodes_in_progress_share_a_pixel_budget(monkeypatch):
    """Decoding a large photo takes memory in proportion to its pixels: uploads decoded at once
    share a budget, so many at the same time wait their turn instead of exhausting the memory."""
    from PIL import ImageFile

    budget = image._PixelBudget(2 * 48 * 32)                 # room for two of these photos at once
    monkeypatch.setattr(image, "_budget", budget)
    real, peak = ImageFile.ImageFile.load, []

    def slow_load(self):
        peak.append(budget.used)
        time.sleep(0.05)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    with ThreadPoolExecutor(8) as pool:
        works = list(pool.map(lambda _: intake.work_from_request(request(strokes=2)), range(8)))
    assert all((w.width, w.height) == (48, 32) for w in works)
    assert max(peak) <= 2 * 48 * 32 and budget.used == 0


def test_batches_beyond_the_limit_are_refused_before_decoding(monkeypatch):
    assert intake.work_from_request(request(levels=[4, 8, 16, 32], seeds=3)).width == 48
    assert intake.work_from_request(request(strokes=256, seeds=4)).width == 48          # exactly 1024
    monkeypatch.setattr(intake, "load_image", lambda data: pytest.fail("decoded a job that is refused anyway"))
    for settings, what in [({"strokes": 256, "seeds": 5}, "256 strokes × 5 seeds is 1280"),
                           ({"levels": [64, 128, 256], "preset": "standard"}, "levels [64, 128, 256] × 3 seeds is 1344")]:
        with pytest.raises(HTTPException) as refused:
            intake.work_from_request(request(**settings))
        assert refused.value.status_code == 422
        assert what in refused.value.detail and "up to 1024" in refused.value.detail and "fewer seeds" in refused.value.detail


def tiny_work(seed: int, **settings) -> Work:
    s = SketchSettings(clip="random:tiny-RN", saliency_clip="random:tiny-ViT", strokes=2, aug_bank=0,
                       augmentations=1, saliency=False, seed=seed, early_stop=False, **settings)
    return Work(image=png("white"), settings=s, width=48, height=32)


def test_preset_auto_follows_the_engines_device():
    """A job that leaves the preset to the engine gets fast on a CPU engine, standard on a GPU one
    (these queues are never started: nothing runs)."""
    for device, preset, iterations in (("cpu", "fast", 500), ("cuda", "standard", 2000)):
        queue = JobQueue(device)
        job = queue.submit(tiny_work(0))
        assert (job.work.settings.preset, job.iterations, job.work.settings.device) == (preset, iterations, device)
    pinned = JobQueue("cuda").submit(tiny_work(0, preset="fast"))
    assert pinned.iterations == 500


def test_eta_from_the_start_once_the_engine_knows_its_pace():
    queue = JobQueue("cpu")
    assert queue.snapshot(queue.submit(tiny_work(1, iterations=300))).get("eta_s") is None   # no pace known yet
    queue.cancel_all()
    queue.start()
    try:
        finish(queue, queue.submit(tiny_work(2, iterations=8)).id)                     # measures the pace
        running = queue.submit(tiny_work(3, iterations=400))
        waiting = queue.submit(tiny_work(4, iterations=400, seeds=2))                  # twice the images per step
        first, second = queue.snapshot(running), queue.snapshot(waiting)
        assert first["eta_s"] is not None and first["eta_s"] > 0
        assert second["state"] == "queued" and second["eta_s"] > first["eta_s"]     # it waits for the first one too
    finally:
        queue.stop()


def test_regions_that_miss_the_photo_are_refused_at_intake():
    """A drawn region is checked against the photo before the job waits in line: 422 naming it."""
    square = [[4, 4], [20, 4], [20, 20], [4, 20]]
    ok = intake.work_from_request(request(regions=[{"role": "subject", "polygon": square}]))
    assert ok.settings.regions[0].role == "subject"
    for polygon, what in [([[60, 40], [90, 40], [90, 60]], "regions[0] (avoid): it covers no pixel of the 48×32 photo"),
                          ([[0, 0], [10, 0], [10, 900]], "regions[0] (avoid): it reaches (10, 900), far outside")]:
        with pytest.raises(HTTPException) as refused:
            intake.work_from_request(request(regions=[{"role": "avoid", "polygon": polygon}]))
        assert refused.value.status_code == 422 and what in refused.value.detail, refused.value.detail


def test_regions_are_part_of_the_jobs_identity():
    square = [[4, 4], [20, 4], [20, 20], [4, 20]]
    plain = tiny_work(1)
    drawn = tiny_work(1, regions=[{"role": "avoid", "polygon": square}])
    other = tiny_work(1, regions=[{"role": "detail", "polygon": square}])
    assert len({plain.key(), drawn.key(), other.key()}) == 3
