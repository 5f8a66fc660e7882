"""Background sketches, end to end: Sketch and Refine return at once with a placeholder layer,
the designer keeps working (moves, rotates, regroups or deletes the photo; the engine may even
be killed), and Insert finished sketches puts the strokes where they belong.

Debian's Inkscape 1.2 runs headless (xvfb-run) wherever it can: every Sketch and Refine, and
every Insert that has nothing to tell (inserted, or progress put in the placeholders' labels and
notes, e.g. the Insert that restarts a killed engine). An Insert that has something to tell
(failed, cancelled, photo deleted) writes its message the way Inkscape shows it while keeping
the changes (stderr, exit status 0), and Inkscape then waits for someone to close that dialog,
which never happens headless: those runs take the fast route (Inkscape's Python and inkex,
exactly the script Inkscape runs), which shows the message directly.

One installed profile and one engine (tiny random CLIP towers, checkpoints every second) serve
the module; the engine is killed at teardown. Tests marked "durable engine" rely on the engine
keeping jobs across restarts and cancelled jobs' strokes (README, *Keep working while it sketches*).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from engine_support import wait_for as poll     # this module's wait_for waits on a job
from extension_support import (
    ABORT_STATUS, IMAGE_BOX, data_uri, engine_pid, framed_document, install_for_tests, installed_client,
    kill_engine, needs_inkscape, needs_inkscape_python, png_bytes, run_fast, run_inkscape, running, small_photo,
    write_preferences,
)

pytestmark = [needs_inkscape_python]

SVG = "{http://www.w3.org/2000/svg}"
INKSCAPE = "{http://www.inkscape.org/namespaces/inkscape}"
NS = "{http://clipasso.org/ns/1.0}"
PHOTO_W, PHOTO_H = 64, 48
MOVE = "rotate(30 100 90) translate(10 -5)"


def photo() -> np.ndarray:
    return small_photo(PHOTO_W, PHOTO_H)


def document() -> str:
    return framed_document(data_uri(png_bytes(photo()), wrap=76))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # the engine the extension starts inherits the checkpoint period
    setup = install_for_tests(tmp_path_factory.mktemp("background"), CLIPASSO_CHECKPOINT_SECONDS="1")
    yield setup
    kill_engine(setup["config"])




def fast(setup, script: str, args: list, doc: Path, out: Path):
    return run_fast(setup["scripts"] / script, args, doc, out, setup["env"])


def inkscape(setup, doc: Path, out: Path, actions: str, extension: str, params: dict):
    write_preferences(setup["profile"], extension, params)
    return run_inkscape(doc, f"{actions}{extension}.noprefs;export-filename:{out};export-do", setup["env"], out.parent)


def parse(path: Path):
    return etree.parse(str(path)).getroot()


def placeholders(root) -> list:
    return [el for el in root.iter() if isinstance(el.tag, str) and el.get(NS + "placeholder") is not None]


def sketch_layers(root) -> list:
    return [g for g in root.iter(SVG + "g") if g.get("data-clipasso-image")]


def the_inserted_layer(path: Path):
    """The one sketch layer of a document saved after Insert, which must have left no placeholder."""
    root = parse(path)
    assert placeholders(root) == []
    (layer,) = sketch_layers(root)
    return layer


def everything_else(path: Path) -> list:
    """Every element as (tag, attributes, text), leaving out placeholders, sketch layers and what
    Inkscape adds on save."""
    found = []
    for el in parse(path).iterdescendants():
        if not isinstance(el.tag, str) or el.tag in (SVG + "defs", "{http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd}namedview"):
            continue
        if any(a.get(NS + "placeholder") is not None or a.get("data-clipasso-image") for a in [el, *el.iterancestors()]):
            continue
        found.append((el.tag, dict(el.attrib), (el.text or "").strip()))
    return found


def wait_for(setup, job: str, states=("done",), timeout: float = 600, until=None) -> dict:
    """Poll the job until it is in one of ``states`` (or ``until(status)`` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        status = installed_client(setup).status(job, preview=False)
        if (until(status) if until else status["state"] in states) or time.monotonic() > deadline:
            return status
        if status["state"] in ("done", "failed", "cancelled") and not until:
            return status
        time.sleep(0.3)


def path_numbers(path) -> np.ndarray:
    """The coordinates of one of our paths (``M x y C x y x y x y``, one or more subpaths)."""
    nums = [float(v) for v in re.findall(r"-?[\d.]+(?:e-?\d+)?", path.get("d"))]
    return np.array(list(zip(nums[::2], nums[1::2])))


def matrix(text: str) -> np.ndarray:
    """3×3 matrix of an SVG transform list of translate/rotate/scale (an independent reading)."""
    total = np.eye(3)
    for name, args in re.findall(r"(\w+)\(([^)]*)\)", text or ""):
        v = [float(a) for a in args.replace(",", " ").split()]
        if name == "translate":
            m = np.array([[1, 0, v[0]], [0, 1, v[1] if len(v) > 1 else 0], [0, 0, 1]])
        elif name == "scale":
            m = np.diag([v[0], v[1] if len(v) > 1 else v[0], 1.0])
        elif name == "rotate":
            a = np.radians(v[0])
            m = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            if len(v) == 3:
                m = matrix(f"translate({v[1]} {v[2]})") @ m @ matrix(f"translate({-v[1]} {-v[2]})")
        elif name == "matrix":
            m = np.array([[v[0], v[2], v[4]], [v[1], v[3], v[5]], [0, 0, 1]])
        else:
            raise ValueError(name)
        total = total @ m
    return total


def pixel_placement() -> np.ndarray:
    """The photo's pixels → its user space (x/y/width/height, same aspect ratio)."""
    x, y, w, _ = IMAGE_BOX
    s = w / PHOTO_W
    return np.array([[s, 0, x], [0, s, y], [0, 0, 1]])


def apply(m: np.ndarray, points) -> np.ndarray:
    pts = np.asarray(points, float).reshape(-1, 2)
    return (m @ np.c_[pts, np.ones(len(pts))].T).T[:, :2]


def composed(el) -> np.ndarray:
    total = np.eye(3)
    for node in [el, *el.iterancestors()]:
        total = matrix(node.get("transform")) @ total
    return total


def check_strokes_over(layer, result: dict, pixels_to_document: np.ndarray) -> None:
    """Each path of the layer is its stroke of ``result``, mapped onto the photo as placed by
    ``pixels_to_document`` (photo pixels → root user space): geometry, not just counts."""
    (strokes,) = result["levels"].values()
    paths = layer.findall(SVG + "path")
    assert len(paths) == len(strokes)
    to_local = np.linalg.inv(composed(layer)) @ pixels_to_document
    for path, stroke in zip(paths, strokes):
        assert np.allclose(path_numbers(path), apply(to_local, stroke["points"]), atol=2e-3)


def submit_background_sketch(setup, tmp_path: Path, name: str = "placeholder.svg", **params) -> tuple[Path, str]:
    """A background Sketch in real Inkscape; the saved document and its job id."""
    doc, out = tmp_path / "in.svg", tmp_path / name
    doc.write_text(document())
    opts = {"strokes": 4, "iterations": 3, "preset": "fast", "open_preview": "false", "background": "true", **params}
    run = inkscape(setup, doc, out, "select-by-id:img1;", "org.clipasso.sketch", opts)
    assert run.returncode == 0, run.stderr
    (holder,) = placeholders(parse(out))
    return out, holder.get(NS + "job")


def fast_background_sketch(setup, tmp_path: Path, **params) -> tuple[Path, str]:
    """The same the fast way (the script Inkscape runs, without Inkscape)."""
    doc, out = tmp_path / "in.svg", tmp_path / "placeholder.svg"
    doc.write_text(document())
    opts = {"strokes": 3, "iterations": 2, "preset": "fast", "open_preview": "false", **params}
    run = fast(setup, "clipasso_sketch.py", ["--id=img1", *(f"--{k}={v}" for k, v in opts.items())], doc, out)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    (holder,) = placeholders(parse(out))
    return out, holder.get(NS + "job")


def edit(path: Path, change) -> Path:
    """Change the saved document between runs, as a designer would in Inkscape meanwhile."""
    root = parse(path)
    change(root)
    path.write_bytes(etree.tostring(root))
    return path


def by_id(root, ident: str):
    return root.xpath(f"//*[@id='{ident}']")[0]


# --- real Inkscape -----------------------------------------------------------------------


@needs_inkscape
def test_background_sketch_then_insert_over_the_regrouped_photo(setup, tmp_path):
    """Sketch returns with a placeholder right above the photo; the photo is then regrouped into
    another layer, moved and rotated; Insert puts the strokes over it there, nothing else changes."""
    placed, job = submit_background_sketch(setup, tmp_path, seed=11)
    root = parse(placed)
    (holder,) = placeholders(root)
    assert holder.getparent().get("id") == "layer1" and holder.getprevious().get("id") == "img1"
    assert holder.get(INKSCAPE + "label").startswith("CLIPasso: sketching 4 strokes…")
    assert "Insert finished sketches" in holder.get(INKSCAPE + "label")
    assert everything_else(placed) == everything_else(tmp_path / "in.svg")
    assert wait_for(setup, job)["state"] == "done"

    def regroup(root):
        image = by_id(root, "img1")
        group = etree.SubElement(by_id(root, "layer2"), SVG + "g", id="moved", transform=MOVE)
        group.append(image)
    moved = edit(placed, regroup)
    out = tmp_path / "inserted.svg"
    run = inkscape(setup, moved, out, "", "org.clipasso.insert", {})
    assert run.returncode == 0, run.stderr
    layer = the_inserted_layer(out)
    assert layer.getparent().get("id") == "layer2" and layer.getprevious().get("id") == "moved"
    assert layer.get(INKSCAPE + "label") == "4 strokes · seed 11 · CLIPasso · random weights"
    assert layer.get(NS + "seed") == "11" and json.loads(layer.get(NS + "settings"))["seed"] == 11
    assert layer.get(NS + "clip") == "random:tiny-RN" and layer.get(NS + "engine-version")
    result = installed_client(setup).result(job)
    assert -1 <= result["level_info"]["4"]["clip_score"] <= 1
    assert layer.get(NS + "score") == "{:.4f}".format(result["level_info"]["4"]["clip_score"])
    check_strokes_over(layer, result, matrix(MOVE) @ pixel_placement())
    assert everything_else(out) == everything_else(moved)


@needs_inkscape
def test_engine_killed_mid_job_resumes_and_insert_places_over_the_moved_photo(setup, tmp_path):
    """Durable engine. The engine dies (SIGKILL) while sketching; meanwhile the photo is moved
    and rotated; Insert starts the engine again, the job goes on from its last checkpoint (not
    from 0) and, once it is done, Insert puts the strokes over the photo where it is now."""
    placed, job = submit_background_sketch(setup, tmp_path, iterations=60, seed=5)
    checkpoint = setup["config"] / "jobs" / job / "checkpoint.pt"     # written every second (setup)
    status = wait_for(setup, job, until=lambda s: s["state"] in ("done", "failed") or (s["iteration"] >= 5 and checkpoint.exists()))
    assert status["state"] == "running", status
    killed_at = status["iteration"]
    pid = engine_pid(setup["config"])
    os.kill(pid, signal.SIGKILL)
    poll(lambda: not running(pid), timeout=10, every=0.05)
    assert not running(pid)

    moved = edit(placed, lambda root: by_id(root, "img1").set("transform", MOVE))
    first = tmp_path / "progress.svg"
    run = inkscape(setup, moved, first, "", "org.clipasso.insert", {})   # starts the engine; the job resumes
    assert run.returncode == 0, run.stderr
    assert engine_pid(setup["config"]) != pid and running(engine_pid(setup["config"]))
    resumed = installed_client(setup).status(job, preview=False)
    assert resumed["resumed_from"] is not None and 0 < resumed["resumed_from"] <= killed_at, resumed
    assert resumed["iteration"] >= resumed["resumed_from"]
    out = first
    if placeholders(parse(first)):      # as expected: the job had most of its steps to go
        (holder,) = placeholders(parse(first))
        assert re.search(r"sketching 4 strokes… (\d+ %|waiting)", holder.get(INKSCAPE + "label"))
        assert everything_else(first) == everything_else(moved)
        assert wait_for(setup, job)["state"] == "done"
        out = tmp_path / "inserted.svg"
        run = inkscape(setup, first, out, "", "org.clipasso.insert", {})
        assert run.returncode == 0, run.stderr
    layer = the_inserted_layer(out)
    assert layer.getparent().get("id") == "layer1"
    check_strokes_over(layer, installed_client(setup).result(job), matrix("translate(5 7)") @ matrix(MOVE) @ pixel_placement())
    assert everything_else(out) == everything_else(moved)


@needs_inkscape
def test_background_refine_redraws_the_edited_paths_in_place(setup, tmp_path):
    """A blocking sketch, then a background Refine of two of its paths (the others fixed): the
    paths stay untouched until Insert redraws exactly those two, same elements and ids."""
    doc, sketched = tmp_path / "in.svg", tmp_path / "sketched.svg"
    doc.write_text(document())
    opts = {"strokes": 4, "iterations": 2, "preset": "fast", "open_preview": "false", "background": "false"}
    run = inkscape(setup, doc, sketched, "select-by-id:img1;", "org.clipasso.sketch", opts)
    assert run.returncode == 0, run.stderr
    (layer,) = sketch_layers(parse(sketched))
    before = {p.get("id"): (p.get("d"), p.get("style")) for p in layer.iter(SVG + "path")}
    moving = sorted(before)[:2]

    pending = tmp_path / "pending.svg"
    opts = {"iterations": 3, "preset": "fast", "lock": "unselected", "open_preview": "false", "background": "true"}
    run = inkscape(setup, sketched, pending, "".join(f"select-by-id:{i};" for i in moving), "org.clipasso.refine", opts)
    assert run.returncode == 0, run.stderr
    root = parse(pending)
    (holder,) = placeholders(root)
    (layer,) = sketch_layers(root)
    assert holder.getparent() is layer and holder.get(NS + "placeholder") == "refine"
    assert sorted(holder.get(NS + "replaces").split()) == moving
    assert holder.get(INKSCAPE + "label").startswith("CLIPasso: refining 2 paths…")
    assert {p.get("id"): (p.get("d"), p.get("style")) for p in layer.findall(SVG + "path")} == before
    job = holder.get(NS + "job")
    assert wait_for(setup, job)["state"] == "done"

    out = tmp_path / "refined.svg"
    run = inkscape(setup, pending, out, "", "org.clipasso.insert", {})
    assert run.returncode == 0, run.stderr
    layer = the_inserted_layer(out)
    after = {p.get("id"): (p.get("d"), p.get("style")) for p in layer.iter(SVG + "path")}
    assert list(after) == list(before)
    for ident, (d, style) in after.items():
        assert style == before[ident][1]
        if ident not in moving:
            assert d == before[ident][0]
    # each moved path is its refined stroke, on the photo (layer1: translate(5 7))
    (strokes,) = installed_client(setup).result(job)["levels"].values()
    for ident, stroke in zip(holder.get(NS + "replaces").split(), strokes):   # one segment, one stroke each
        path = by_id(layer.getroottree().getroot(), ident)
        assert np.allclose(path_numbers(path), apply(np.linalg.inv(composed(path)) @ matrix("translate(5 7)") @ pixel_placement(),
                                                     stroke["points"]), atol=2e-3)
    assert everything_else(out) == everything_else(sketched)


# --- the fast route: the same scripts without Inkscape ---------------------------------------


def test_placeholder_keeps_what_insert_needs_in_our_namespace(setup, tmp_path):
    placed, job = fast_background_sketch(setup, tmp_path, levels="2,3", preset="auto", iterations=2)
    text = placed.read_text()
    assert 'xmlns:clipasso="http://clipasso.org/ns/1.0"' in text
    (holder,) = placeholders(parse(placed))
    assert holder.get(INKSCAPE + "groupmode") == "layer" and holder.get("{http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd}insensitive") == "true"
    assert holder.get(INKSCAPE + "label").startswith("CLIPasso: sketching 2, 3 strokes…")
    settings = json.loads(holder.get(NS + "settings"))
    assert "preset" not in settings                      # Automatic: the engine picks
    assert settings["levels"] == [2, 3] and 1 <= settings["seed"] <= 2**31 - 1
    assert holder.get(NS + "seed") == str(settings["seed"]) and holder.get(NS + "image") == "img1"
    assert holder.get(NS + "engine") == setup["url"] and holder.get(NS + "size") == f"{PHOTO_W} {PHOTO_H}"
    assert installed_client(setup).status(job, preview=False)["id"] == job
    # the stored placement is the photo's pixels → document, and the dashed frame covers the photo
    expected = matrix("translate(5 7)") @ pixel_placement()
    assert np.allclose(matrix(holder.get(NS + "placement")), expected)
    frame = holder.find(f"{SVG}g/{SVG}rect")
    corners = [(float(frame.get("x")), float(frame.get("y"))),
               (float(frame.get("x")) + float(frame.get("width")), float(frame.get("y")) + float(frame.get("height")))]
    assert np.allclose(apply(composed(frame), corners), apply(expected, [(0, 0), (PHOTO_W, PHOTO_H)]))
    assert everything_else(placed) == everything_else(tmp_path / "in.svg")
    installed_client(setup).cancel(job)


def test_applying_twice_gives_two_sketches_and_a_seed_gives_the_same_again(setup, tmp_path):
    doc = tmp_path / "in.svg"
    doc.write_text(document())
    args = ["--id=img1", "--strokes=2", "--iterations=2", "--preset=fast", "--open_preview=false", "--background=false"]
    first, second = tmp_path / "first.svg", tmp_path / "second.svg"
    assert fast(setup, "clipasso_sketch.py", args, doc, first).returncode == 0
    assert fast(setup, "clipasso_sketch.py", args, first, second).returncode == 0
    layers = sketch_layers(parse(second))
    labels = [layer.get(INKSCAPE + "label") for layer in layers]
    seeds = [layer.get(NS + "seed") for layer in layers]
    assert len(set(labels)) == 2 and len(set(seeds)) == 2 and all(f"seed {s}" in lb for s, lb in zip(seeds, labels))
    assert [p.get("d") for p in layers[0].iter(SVG + "path")] != [p.get("d") for p in layers[1].iter(SVG + "path")]

    again = tmp_path / "again.svg"
    seeded = [*args, f"--seed={seeds[0]}"]
    assert fast(setup, "clipasso_sketch.py", seeded, doc, again).returncode == 0
    (layer,) = sketch_layers(parse(again))
    assert layer.get(INKSCAPE + "label") == labels[0] and layer.get(NS + "seed") == seeds[0]
    assert [p.get("d") for p in layer.iter(SVG + "path")] == [p.get("d") for p in layers[0].iter(SVG + "path")]


def test_deleted_photo_gets_its_strokes_where_it_was(setup, tmp_path):
    placed, job = fast_background_sketch(setup, tmp_path)
    assert wait_for(setup, job)["state"] == "done"
    report = fast(setup, "clipasso_status.py", [], placed, tmp_path / "status.svg")
    assert report.returncode == ABORT_STATUS and "- sketch of 3 strokes: finished, not inserted yet" in report.stderr
    gone = edit(placed, lambda root: by_id(root, "img1").getparent().remove(by_id(root, "img1")))
    out = tmp_path / "out.svg"
    run = fast(setup, "clipasso_insert.py", [], gone, out)
    assert run.returncode == 0 and "photo of the sketch of 3 strokes was deleted" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) <= 2
    layer = the_inserted_layer(out)
    assert layer.getparent().get("id") == "layer1" and layer.get("data-clipasso-image") == "img1"
    check_strokes_over(layer, installed_client(setup).result(job), matrix("translate(5 7)") @ pixel_placement())
    assert everything_else(out) == everything_else(gone)


def test_still_running_updates_the_label_and_says_how_long(setup, tmp_path):
    placed, job = fast_background_sketch(setup, tmp_path, strokes=5, iterations=5000)
    try:
        wait_for(setup, job, until=lambda s: s["state"] == "running" and s.get("eta_s") is not None)
        out = tmp_path / "out.svg"
        run = fast(setup, "clipasso_insert.py", [], placed, out)
        # progress goes to the label and the note on the canvas, not into a message (a dialog)
        assert run.returncode == 0 and run.stderr == "", run.stderr
        (holder,) = placeholders(parse(out))
        assert re.match(r"CLIPasso: sketching 5 strokes… \d+ %, about .+ left \(Extensions", holder.get(INKSCAPE + "label"))
        notes = [t.text for t in holder.iter(SVG + "text")]
        assert any(re.match(r"CLIPasso: sketching 5 strokes… \d+ %, about .+ left$", n or "") for n in notes), notes
        assert everything_else(out) == everything_else(placed)

        report = fast(setup, "clipasso_status.py", [], out, tmp_path / "status.svg")
        assert report.returncode == ABORT_STATUS and "In this document:\n- sketch of 5 strokes: " in report.stderr
        cancel = fast(setup, "clipasso_status.py", ["--action=cancel_all"], out, tmp_path / "status.svg")
        assert cancel.returncode == ABORT_STATUS and "Cancelled 1 sketch." in cancel.stderr, cancel.stderr
        assert wait_for(setup, job, states=("cancelled",))["state"] == "cancelled"
        assert not (tmp_path / "status.svg").exists()
    finally:
        installed_client(setup).cancel(job) if installed_client(setup).status(job, preview=False)["state"] in ("queued", "running") else None


def test_failed_and_lost_jobs_are_reported_and_the_document_stays_consistent(setup, tmp_path):
    placed, job = fast_background_sketch(setup, tmp_path)
    wait_for(setup, job)
    # a job that fails in the engine (no RN101.pt on this machine), and one it never had
    failing = installed_client(setup).submit(png_bytes(photo()), {"strokes": 2, "iterations": 2, "clip": "RN101"})
    assert wait_for(setup, failing)["state"] == "failed"

    def two_more(root):
        (holder,) = placeholders(root)
        holder.set(NS + "job", failing)
        lost = etree.fromstring(etree.tostring(holder))
        lost.set("id", "lost-one")
        lost.set(NS + "job", "0" * 32)
        holder.addnext(lost)
    edited = edit(placed, two_more)
    out = tmp_path / "out.svg"
    run = fast(setup, "clipasso_insert.py", [], edited, out)
    assert run.returncode == 0, run.stderr
    assert "The sketch of 3 strokes failed: " in run.stderr and "the model file RN101.pt is missing" in run.stderr
    assert "The sketch of 3 strokes is lost: the engine no longer has it" in run.stderr
    root = parse(out)
    failed, lost = placeholders(root)
    assert failed.get(NS + "state") == "failed" and lost.get(NS + "state") == "lost"
    assert failed.get(INKSCAPE + "label").startswith("CLIPasso: sketch of 3 strokes failed: ")
    assert failed.get(INKSCAPE + "label").endswith("(delete this layer)")
    assert sketch_layers(root) == [] and everything_else(out) == everything_else(edited)
    # reported once: a second Insert finds nothing waiting and changes nothing
    again = fast(setup, "clipasso_insert.py", [], out, tmp_path / "again.svg")
    assert again.returncode == ABORT_STATUS and "No CLIPasso sketches are waiting" in again.stderr
    assert not (tmp_path / "again.svg").exists()


def test_placeholders_naming_another_engine_or_a_damaged_job_are_not_followed(setup, tmp_path):
    """A document from elsewhere decides neither where this computer's token goes nor which URL
    path is asked for."""
    placed, job = fast_background_sketch(setup, tmp_path)
    wait_for(setup, job)
    remote = edit(placed, lambda root: placeholders(root)[0].set(NS + "engine", "http://engine.invalid:8765"))
    run = fast(setup, "clipasso_insert.py", [], remote, tmp_path / "out.svg")
    assert run.returncode == ABORT_STATUS and "engine at http://engine.invalid:8765, which is not this computer's" in run.stderr
    assert not (tmp_path / "out.svg").exists()
    damaged = edit(placed, lambda root: placeholders(root)[0].set(NS + "job", "../shutdown"))
    run = fast(setup, "clipasso_insert.py", [], damaged, tmp_path / "out.svg")
    assert run.returncode == 0 and "failed: its job id is damaged" in run.stderr, run.stderr
    assert placeholders(parse(tmp_path / "out.svg"))[0].get(NS + "state") == "failed"


def test_cancelled_job_inserts_its_best_strokes_so_far_marked_cancelled(setup, tmp_path):
    """Durable engine: a cancelled job keeps its best strokes so far."""
    placed, job = fast_background_sketch(setup, tmp_path, strokes=3, iterations=5000, seed=9)
    wait_for(setup, job, until=lambda s: s["state"] == "running" and s["iteration"] >= 2)
    installed_client(setup).cancel(job)
    assert wait_for(setup, job, states=("cancelled",))["state"] == "cancelled"
    out = tmp_path / "out.svg"
    run = fast(setup, "clipasso_insert.py", [], placed, out)
    assert run.returncode == 0 and "was cancelled: its best strokes so far are in, marked cancelled" in run.stderr, run.stderr
    layer = the_inserted_layer(out)
    assert layer.get(INKSCAPE + "label") == "3 strokes · seed 9 · CLIPasso · cancelled · random weights"
    assert layer.get(NS + "stopped") == "cancelled"
    check_strokes_over(layer, installed_client(setup).result(job), matrix("translate(5 7)") @ pixel_placement())
    assert everything_else(out) == everything_else(placed)


MODELS_A = {"clip": "random:tiny-RN", "saliency_clip": "random:tiny-ViT"}
MODELS_B = {"clip": "random:RN50", "saliency_clip": "random:tiny-ViT"}   # RN50 is only named: no sketch here runs it


def set_models(setup, models: dict) -> None:
    """config.json names ``models`` (its other values kept), as a designer would edit it."""
    path = setup["config"] / "config.json"
    values = {k: v for k, v in json.loads(path.read_text()).items() if k not in MODELS_A}
    path.write_text(json.dumps({**values, **models}))


def engine_models(health: dict) -> dict:
    return {k: health[k] for k in MODELS_A}


def engine_status(setup, tmp_path: Path, *args: str):
    """Engine status the fast way (it always ends with its message: a dialog in Inkscape)."""
    doc = tmp_path / "status-in.svg"
    doc.write_text(document())
    run = fast(setup, "clipasso_status.py", list(args), doc, tmp_path / "status-out.svg")
    assert run.returncode == ABORT_STATUS and not (tmp_path / "status-out.svg").exists(), run.stderr
    return run.stderr


def test_engine_status_restarts_only_an_engine_it_started(setup, tmp_path):
    """An engine elsewhere, or one this computer's extension did not start, is left alone: the
    message says what to do instead."""
    engine_status(setup, tmp_path)                                      # the module's engine runs
    remote = engine_status(setup, tmp_path, "--action=restart", "--engine_url=http://engine.invalid:8765")
    assert "is not on this computer, so it cannot be restarted from here" in remote
    record = setup["config"] / "engine.pid"
    kept = record.read_text()
    pid = engine_pid(setup["config"])
    try:   # as if someone had started the engine with `clipasso serve` after the extension's last start
        record.write_text(json.dumps({**json.loads(kept), "pid": os.getpid()}))
        foreign = engine_status(setup, tmp_path, "--action=restart")
    finally:
        record.write_text(kept)
    assert "was not started by Inkscape on this computer" in foreign and "Stop the engine" in foreign, foreign
    assert running(pid) and installed_client(setup).health()["pid"] == pid


def test_restart_the_engine_from_engine_status(setup, tmp_path):
    """Durable engine. config.json is changed to name other models: Engine status says to restart
    the engine; Restart the engine stops it and starts a new process with them, and the sketch it
    was making goes on from its checkpoint."""
    set_models(setup, MODELS_A)
    try:
        assert "Restart the engine" not in engine_status(setup, tmp_path)   # (starts the engine if none runs)
        old = installed_client(setup).health()
        assert engine_models(old) == MODELS_A and old["pid"] == engine_pid(setup["config"])
        _, job = fast_background_sketch(setup, tmp_path, strokes=3, iterations=5000, seed=4)
        checkpoint = setup["config"] / "jobs" / job / "checkpoint.pt"     # written every second (setup)
        before = wait_for(setup, job, until=lambda s: s["state"] != "queued" and s["iteration"] >= 3 and checkpoint.exists())
        assert before["state"] == "running", before

        set_models(setup, MODELS_B)
        assert "asks for clip = random:RN50: choose the action Restart the engine here" in engine_status(setup, tmp_path)
        text = engine_status(setup, tmp_path, "--action=restart")
        assert "The CLIPasso engine was restarted with the models in" in text and "Unfinished sketches go on" in text
        assert "Models: random:RN50 (loss), random:tiny-ViT (start points)." in text and "asks for" not in text, text
        assert not running(old["pid"])
        new = installed_client(setup).health()                                      # real HTTP: a new process, models B
        assert new["pid"] != old["pid"] and new["pid"] == engine_pid(setup["config"]) and running(new["pid"])
        assert engine_models(new) == MODELS_B and new["uptime_s"] < old["uptime_s"] + 60

        resumed = wait_for(setup, job, until=lambda s: s["state"] != "queued" and s["resumed_from"] is not None)
        assert resumed["state"] == "running" and 0 < resumed["resumed_from"] <= resumed["iteration"], resumed
    finally:
        set_models(setup, {})
        cancel_everything(setup)


def test_sketch_restarts_an_idle_engine_with_the_models_of_config_json(setup, tmp_path):
    """The engine runs other models than config.json names. While it is making a sketch, Sketch
    from image leaves it as it is; once it is idle, Sketch (in real Inkscape) restarts it with
    config.json's models first, and the new sketch is made with them."""
    set_models(setup, MODELS_B)
    engine_status(setup, tmp_path)
    if engine_models(installed_client(setup).health()) != MODELS_B:   # run alone: the engine still has the module's models
        engine_status(setup, tmp_path, "--action=restart")
    set_models(setup, MODELS_A)
    try:
        pid = engine_pid(setup["config"])
        busy = installed_client(setup).submit(png_bytes(photo()), {"strokes": 2, "iterations": 5000, **MODELS_A})
        fast_background_sketch(setup, tmp_path)
        assert engine_pid(setup["config"]) == pid and engine_models(installed_client(setup).health()) == MODELS_B
        assert installed_client(setup).status(busy, preview=False)["state"] in ("queued", "running")
        installed_client(setup).cancel_all()
        health = poll(lambda: (h := installed_client(setup).health())["running"] + h["queued"] == 0 and h)
        assert health and health["pid"] == pid

        _, job = submit_background_sketch(setup, tmp_path, seed=3)
        assert not running(pid)
        health = installed_client(setup).health()
        assert health["pid"] == engine_pid(setup["config"]) != pid and engine_models(health) == MODELS_A
        assert wait_for(setup, job)["state"] == "done"
        assert installed_client(setup).result(job)["engine"]["clip"] == "random:tiny-RN"
    finally:
        set_models(setup, {})
        cancel_everything(setup)


def cancel_everything(setup) -> None:
    """Best effort, after a test: no sketch of it keeps the engine busy."""
    try:
        installed_client(setup).cancel_all()
    except Exception:  # noqa: BLE001 - the engine may be down when the test failed
        pass


def test_stop_the_engine_from_engine_status(setup, tmp_path):
    """Durable engine (POST /v1/shutdown). Runs last: it ends with Restart the engine starting a new one."""
    doc = tmp_path / "in.svg"
    doc.write_text(document())
    pid = engine_pid(setup["config"])
    assert pid is not None and running(pid)
    run = fast(setup, "clipasso_status.py", ["--action=stop"], doc, tmp_path / "out.svg")
    assert run.returncode == ABORT_STATUS and "is stopping" in run.stderr, run.stderr
    poll(lambda: not running(pid), timeout=30)
    assert not running(pid)
    off = fast(setup, "clipasso_status.py", ["--start=false"], doc, tmp_path / "out.svg")
    assert off.returncode == ABORT_STATUS and "No CLIPasso engine is running" in off.stderr
    # Restart the engine with none running starts one (stopped by the module's teardown)
    started = engine_status(setup, tmp_path, "--action=restart")
    assert "No CLIPasso engine was running; it is started now.\nThe CLIPasso engine " in started, started
    assert engine_pid(setup["config"]) != pid and installed_client(setup).health()["pid"] == engine_pid(setup["config"])
