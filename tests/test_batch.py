"""``clipasso batch`` on one machine, run for real: a folder of small photos with a corrupt one,
the report, the exit status, resuming, and the usage errors that stop it before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from clipasso_engine.batch import REPORT_NAME, run_batch, run_local
from clipasso_engine.cli import main
from clipasso_engine.settings import SketchSettings
from clipasso_engine.svg import svg_to_strokes

TINY = ["--clip", "random:tiny-RN", "--saliency-clip", "random:tiny-ViT", "--device", "cpu",
        "--preset", "fast", "--iterations", "6", "--eval-every", "2", "-q"]


def make_photos(folder: Path) -> Path:
    """Two small photos, a corrupt JPEG, and a text file a folder scan must leave out."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.coffee()).resize((90, 60)).save(folder / "coffee.png")
    Image.fromarray(data.astronaut()).resize((64, 64)).save(folder / "astro.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def report(out: Path) -> dict:
    return json.loads((out / REPORT_NAME).read_text())


def test_batch_report_exit_status_and_resume(tmp_path, capsys):
    photos, out = make_photos(tmp_path / "photos"), tmp_path / "out"

    assert main(["batch", str(photos), "-o", str(out), "--strokes", "6", "--png", "--json", *TINY[:-1]]) == 1
    err = capsys.readouterr().err
    assert "3/3" in err and "photo" in err                         # the progress bar over photos
    assert "broken: failed: " in err and "2 sketched, 0 skipped, 1 failed" in err
    rep = report(out)
    assert set(rep["images"]) == {"astro", "broken", "coffee"}     # notes.txt is no photo
    assert rep["summary"] == {"ok": 2, "skipped": 0, "failed": 1}
    for name, size in (("coffee", (90, 60)), ("astro", (64, 64))):
        e = rep["images"][name]
        assert e["status"] == "ok" and e["error"] is None and e["seed"] == 0 and e["seconds"] > 0
        assert isinstance(e["loss"], float) and e["device"] == "cpu"
        assert sorted(e["outputs"]) == [f"{name}.json", f"{name}.png", f"{name}.svg"]
        strokes, w, h = svg_to_strokes((out / f"{name}.svg").read_bytes())
        assert len(strokes) == 6 and (w, h) == size
        assert Image.open(out / f"{name}.png").size == size
        assert json.loads((out / f"{name}.json").read_text())["loss"] == e["loss"]
    bad = rep["images"]["broken"]
    assert bad["status"] == "failed" and "not a readable image" in bad["error"] and bad["outputs"] == []
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [REPORT_NAME] + [f"{n}.{x}" for n in ("astro", "coffee") for x in ("svg", "png", "json")])

    # the same command again: the finished photos are skipped (files untouched), the broken one retried
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.svg")}
    assert main(["batch", str(photos), "-o", str(out), "--strokes", "6", "--png", "--json", *TINY]) == 1
    rep2 = report(out)
    assert rep2["summary"] == {"ok": 0, "skipped": 2, "failed": 1}
    assert {n: e["status"] for n, e in rep2["images"].items()} == {"astro": "skipped", "coffee": "skipped", "broken": "failed"}
    assert rep2["images"]["coffee"]["loss"] == rep["images"]["coffee"]["loss"]
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.svg")} == before

    # the bad photo gone and one output deleted: only that photo is sketched again, and all succeeded
    (photos / "broken.jpg").unlink()
    (out / "astro.png").unlink()
    assert main(["batch", str(photos), "-o", str(out), "--strokes", "6", "--png", "--json", *TINY]) == 0
    rep3 = report(out)
    assert rep3["images"]["astro"]["status"] == "ok" and rep3["images"]["coffee"]["status"] == "skipped"
    assert (out / "astro.png").is_file()
    assert rep3["images"]["broken"]["status"] == "failed"           # an entry from earlier runs is kept

    # a changed setting makes every photo new again
    assert main(["batch", str(photos), "-o", str(out), "--strokes", "4", "--png", "--json", *TINY]) == 0
    rep4 = report(out)
    assert rep4["summary"] == {"ok": 2, "skipped": 0, "failed": 0}
    assert rep4["images"]["coffee"]["key"] != rep3["images"]["coffee"]["key"]
    assert len(svg_to_strokes((out / "coffee.svg").read_bytes())[0]) == 4


def test_batch_writes_what_sketch_writes(tmp_path):
    """Every sketch option means the same in a batch: its SVG is the one `clipasso sketch` writes."""
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.coffee()).resize((90, 60)).save(photos / "coffee.png")
    opts = ["--levels", "2,3", "--seed", "7", "--width", "2.5", *TINY]
    assert main(["batch", str(photos / "coffee.png"), "-o", str(tmp_path / "out"), "--png", *opts]) == 0
    assert main(["sketch", str(photos / "coffee.png"), "-o", str(tmp_path / "one.svg"), "--png", str(tmp_path / "one.png"), *opts]) == 0
    assert (tmp_path / "out" / "coffee.svg").read_bytes() == (tmp_path / "one.svg").read_bytes()
    for n in (2, 3):                       # one PNG per level, named as sketch names them
        assert (tmp_path / "out" / f"coffee-{n}.png").read_bytes() == (tmp_path / f"one-{n}.png").read_bytes()
    assert report(tmp_path / "out")["images"]["coffee"]["seed"] == 7


def test_interrupted_batch_resumes_where_it_stopped(tmp_path):
    """The report is written after every photo: a batch stopped after one resumes with the next."""
    photos, out = make_photos(tmp_path / "photos"), tmp_path / "out"
    (photos / "broken.jpg").unlink()
    settings = SketchSettings(clip="random:tiny-RN", saliency_clip="random:tiny-ViT", device="cpu", preset="fast",
                              iterations=4, eval_every=2, strokes=3)

    def stopped_after_one(recipe, tasks):
        for item in run_local(recipe, tasks):
            yield item
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch([photos], out, settings, runner=stopped_after_one)
    first = report(out)["images"]
    assert list(first) == ["astro"] and first["astro"]["status"] == "ok"    # sorted: astro went first
    done = run_batch([photos], out, settings)
    assert {n: e["status"] for n, e in done.images.items()} == {"astro": "skipped", "coffee": "ok"}


@pytest.mark.parametrize("setup, args, match", [
    (None, ["missing-folder"], "missing-folder: no such file or folder"),
    ("empty", ["empty"], "no images found in"),
    ("clash", ["a", "b"], "same name would overwrite"),
    ("photo", ["photo.png", "--strokes", "0"], "--strokes"),
    ("photo", ["photo.png", "--gpus-per-sketch", "0.5"], "go with --ray"),
    ("photo", ["--ray", "photo.png", "photo.png"], "put --ray after the photos"),
    ("photo", ["photo.png", "--ray", "--gpus-per-sketch", "2"], "from 0 to 1"),
    ("batch", ["batch.png", "--json"], "would overwrite the report"),
])
def test_usage_errors_are_one_line_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys, setup, args, match):
    monkeypatch.chdir(tmp_path)
    pic = Image.new("RGB", (32, 32), "white")
    if setup == "empty":
        Path("empty").mkdir()
    elif setup == "clash":
        for d, ext in (("a", "png"), ("b", "jpg")):
            Path(d).mkdir()
            pic.save(Path(d) / f"cat.{ext}")
    elif setup in ("photo", "batch"):
        pic.save(f"{setup}.png")
    assert main(["batch", *args, "-o", "out", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clipasso: error: ") and err.count("\n") == 1 and match in err
    assert not Path("out").exists()


def test_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    Image.new("RGB", (32, 32), "white").save(tmp_path / "p.png")
    (tmp_path / "out").write_text("a file")
    assert main(["batch", str(tmp_path / "p.png"), "-o", str(tmp_path / "out"), *TINY]) == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "a file"


def test_ray_asked_without_ray_installed(tmp_path, monkeypatch, capsys):
    """Ray is an optional extra: --ray without it is one line saying what to install."""
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)                 # `import ray` now fails as if absent
    monkeypatch.delitem(sys.modules, "clipasso_engine.ray_batch", raising=False)
    Image.new("RGB", (32, 32), "white").save(tmp_path / "p.png")
    assert main(["batch", str(tmp_path / "p.png"), "-o", str(tmp_path / "out"), *TINY, "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "clipasso-inkscape[ray]"' in err
    assert not (tmp_path / "out").exists()
