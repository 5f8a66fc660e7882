"""``clipasso batch --ray``: the same batch on a real local Ray (2 CPUs, started once for the
module), giving the local batch's strokes; Ray's processes are gone afterwards."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'clipasso-inkscape[ray]'; CI installs it)")

import torch  # noqa: E402

from clipasso_engine.batch import REPORT_NAME, BatchError, run_batch  # noqa: E402
from clipasso_engine.cli import main  # noqa: E402
from clipasso_engine.ray_batch import ray_runner  # noqa: E402
from clipasso_engine.settings import SketchSettings  # noqa: E402
from test_batch import TINY, make_photos  # noqa: E402


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    before = _descendants(os.getpid())
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
             logging_level="WARNING")
    started = _descendants(os.getpid()) - before
    assert started, "a local Ray runs its own processes"
    yield
    ray.shutdown()
    deadline = time.monotonic() + 30
    while (_descendants(os.getpid()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (_descendants(os.getpid()) - before), "Ray left processes running"


def test_ray_batch_gives_the_local_strokes(local_ray, tmp_path, capsys):
    """Same photos, same seed: the files from two Ray workers equal those of the local batch.
    Both sketch with one torch thread (a Ray worker with one CPU has one), since the float sums
    of a different thread count differ in the last bits."""
    photos = make_photos(tmp_path / "photos")
    settings = ["--strokes", "5", "--seed", "3", "--png", "--json"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["batch", str(photos), "-o", str(tmp_path / "local"), *settings, *TINY]) == 1
    finally:
        torch.set_num_threads(threads)
    assert main(["batch", str(photos), "-o", str(tmp_path / "ray"), *settings, *TINY,
                 "--ray", "--cpus-per-sketch", "1"]) == 1
    assert "broken: failed: " in capsys.readouterr().err

    local, on_ray = (json.loads((tmp_path / d / REPORT_NAME).read_text())["images"] for d in ("local", "ray"))
    assert {n: e["status"] for n, e in on_ray.items()} == {"astro": "ok", "coffee": "ok", "broken": "failed"}
    assert on_ray["broken"]["error"] == local["broken"]["error"]
    me = str(os.getpid())
    assert all(e["worker"].rsplit(":", 1)[1] == me for e in local.values())
    assert all(e["worker"].rsplit(":", 1)[1] != me for e in on_ray.values())     # computed in Ray's workers
    for name in ("astro", "coffee"):
        assert (on_ray[name]["loss"], on_ray[name]["seed"]) == (local[name]["loss"], local[name]["seed"])
        assert (tmp_path / "ray" / f"{name}.svg").read_bytes() == (tmp_path / "local" / f"{name}.svg").read_bytes()
        assert (tmp_path / "ray" / f"{name}.png").read_bytes() == (tmp_path / "local" / f"{name}.png").read_bytes()
        strokes = [json.loads((tmp_path / d / f"{name}.json").read_text())["levels"] for d in ("local", "ray")]
        assert strokes[0] == strokes[1]

    # resuming on Ray skips what is done (whoever computed it)
    assert main(["batch", str(photos), "-o", str(tmp_path / "local"), *settings, *TINY, "--ray=", "--cpus-per-sketch", "1"]) == 1
    rep = json.loads((tmp_path / "local" / REPORT_NAME).read_text())
    assert rep["summary"] == {"ok": 0, "skipped": 2, "failed": 1}
    assert ray.is_initialized()                     # a Ray the batch did not start is left running


def test_gpus_asked_on_a_cluster_without_gpus(local_ray, tmp_path):
    photos = make_photos(tmp_path / "photos")
    settings = SketchSettings(clip="random:tiny-RN", saliency_clip="random:tiny-ViT", device="cpu", iterations=2)
    with pytest.raises(BatchError, match="has no GPUs"):
        run_batch([photos], tmp_path / "out", settings, runner=ray_runner(gpus_per_sketch=0.25))
    with pytest.raises(BatchError, match="no node of the Ray cluster has 4 CPU"):
        run_batch([photos], tmp_path / "out", settings, runner=ray_runner(cpus_per_sketch=4))


def test_workers_that_cannot_load_the_models_stop_the_batch(local_ray, tmp_path):
    photos = make_photos(tmp_path / "photos")
    settings = SketchSettings(clip=str(tmp_path / "no-such-weights.pt"), saliency_clip="random:tiny-ViT", device="cpu",
                              iterations=2)
    with pytest.raises(BatchError, match="cannot load the models: .*no-such-weights.pt"):
        run_batch([photos], tmp_path / "out", settings, runner=ray_runner())
    rep = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert rep["images"] == {}                     # nothing was sketched or marked failed
