"""The installed extension, end to end: Debian's Inkscape 1.2 headless (xvfb-run) runs it on a
document with an embedded and with a linked photo, the extension starts the engine itself (tiny
random CLIP models, a few iterations) and the strokes come back as layers over the photo. Error
paths run the way Inkscape runs the script (its Python, its inkex), which is quicker and shows
the message and exit status directly.

One installed profile and one engine serve the whole module (the second sketch reuses the
engine the first one started); the engine is killed at teardown.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from extension_support import (
    ABORT_STATUS, IMAGE_BOX, data_uri, engine_pid, framed_document, free_port, install_for_tests, installed_client,
    installed_client_module, kill_engine, needs_inkscape, needs_inkscape_python, png_bytes, run_fast, run_inkscape,
    running, small_photo, write_preferences,
)

pytestmark = [needs_inkscape_python]

SVG = "{http://www.w3.org/2000/svg}"
INKSCAPE = "{http://www.inkscape.org/namespaces/inkscape}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
CLIPASSO_NS = "{http://clipasso.org/ns/1.0}"
# the photo sits at x=20, y=30, 160×120 user units, inside a transformed layer
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """install.py into a temporary Inkscape profile and config dir, engine on an unused port."""
    setup = install_for_tests(tmp_path_factory.mktemp("inkscape-e2e"))
    yield setup
    kill_engine(setup["config"])


def elements_outside_sketch(path: Path) -> list:
    """Every element of the document as (tag, attributes, text), leaving out the CLIPasso
    layers and what Inkscape itself adds on save (namedview, defs, root bookkeeping)."""
    root = etree.parse(str(path)).getroot()
    found = [("svg", {k: root.get(k) for k in ("width", "height", "viewBox")}, None)]
    for el in root.iterdescendants():
        if not isinstance(el.tag, str) or el.tag in (SVG + "defs", "{http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd}namedview"):
            continue
        if any(a.get("data-clipasso-image") for a in [el, *el.iterancestors()]):
            continue
        found.append((el.tag, dict(el.attrib), (el.text or "").strip()))
    return found


def sketch_layers(path: Path) -> list:
    root = etree.parse(str(path)).getroot()
    return [g for g in root.iter(SVG + "g") if g.get("data-clipasso-image")]


def path_points(layer) -> np.ndarray:
    """All path coordinates of a layer (our paths are M x y C x y x y x y), in its user space."""
    pts = []
    for p in layer.iter(SVG + "path"):
        nums = [float(v) for v in p.get("d").replace("M", " ").replace("C", " ").split()]
        pts += list(zip(nums[::2], nums[1::2]))
    return np.array(pts)


def check_sketch(in_svg: Path, out_svg: Path, counts: list[int]) -> list:
    """The layers over the photo, with the right strokes; everything else as it was."""
    assert out_svg.exists(), "Inkscape wrote nothing"
    layers = sketch_layers(out_svg)
    assert sorted(len(layer.findall(SVG + "path")) for layer in layers) == counts
    for layer in layers:
        assert layer.get(INKSCAPE + "groupmode") == "layer"
        assert layer.getparent().get("id") == "layer1"      # next to the photo, inside its layer
        assert "random weights" in layer.get(INKSCAPE + "label")
        assert layer.get("data-clipasso-image") == "img1"
        # sketch layers sit above the image in z-order
        siblings = list(layer.getparent())
        assert siblings.index(layer) > [s.get("id") for s in siblings].index("img1")
        # same user space as the image: the strokes stay within (a little around) its box
        x, y, w, h = IMAGE_BOX
        pts = path_points(layer)
        margin = 0.25 * w
        assert (pts[:, 0] > x - margin).all() and (pts[:, 0] < x + w + margin).all()
        assert (pts[:, 1] > y - margin).all() and (pts[:, 1] < y + h + margin).all()
    assert elements_outside_sketch(out_svg) == elements_outside_sketch(in_svg)
    return layers


@needs_inkscape
def test_sketch_embedded_image_in_inkscape(setup, tmp_path):
    """Extension starts the engine, two abstraction levels → two layers."""
    in_svg, out_svg = tmp_path / "in.svg", tmp_path / "out.svg"
    in_svg.write_text(framed_document(data_uri(png_bytes(small_photo()), wrap=76)))
    write_preferences(setup["profile"], "org.clipasso.sketch",
                      {"levels": "2,3", "iterations": 3, "preset": "fast", "open_preview": "false", "background": "false"})
    out = run_inkscape(in_svg, f"select-by-id:img1;org.clipasso.sketch.noprefs;export-filename:{out_svg};export-do", setup["env"], tmp_path)
    assert out.returncode == 0, out.stderr
    layers = check_sketch(in_svg, out_svg, [2, 3])
    # document order = bottom to top: the fewer strokes below and hidden, the most detailed on top
    assert [len(layer.findall(SVG + "path")) for layer in layers] == [2, 3]
    assert [layer.get("style") for layer in layers] == ["display:none", None]
    pid = engine_pid(setup["config"])
    assert pid is not None and running(pid), "the engine should outlive Inkscape"


@needs_inkscape
def test_sketch_linked_image_in_inkscape_reuses_the_engine(setup, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(png_bytes(small_photo()))
    in_svg, out_svg = tmp_path / "in.svg", tmp_path / "out.svg"
    in_svg.write_text(framed_document("photos/cat.png"))
    write_preferences(setup["profile"], "org.clipasso.sketch", {"strokes": 4, "iterations": 2, "preset": "fast", "open_preview": "false", "background": "false"})
    before = engine_pid(setup["config"])
    out = run_inkscape(in_svg, f"select-by-id:img1;org.clipasso.sketch.noprefs;export-filename:{out_svg};export-do", setup["env"], tmp_path)
    assert out.returncode == 0, out.stderr
    check_sketch(in_svg, out_svg, [4])
    if before is not None:
        assert engine_pid(setup["config"]) == before
    assert etree.parse(str(out_svg)).getroot().find(f".//{SVG}image").get(XLINK_HREF) == "photos/cat.png"


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG file whose header gives this size (a photo's header may say anything)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def fast(setup, script: str, args: list, doc: Path, tmp_path: Path, env: dict | None = None):
    return run_fast(setup["scripts"] / script, args, doc, tmp_path / "out.svg", env or setup["env"])


def sketch_args(**extra) -> list:
    opts = {"strokes": 3, "iterations": 2, "preset": "fast", "open_preview": "false", "background": "false", **extra}
    return [f"--{k}={v}" for k, v in opts.items()]


def test_refine_moves_the_selected_strokes_in_place(setup, tmp_path):
    """Sketch, then refine two of its strokes with the others locked, all the fast way."""
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    first = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args(strokes=4)], doc, tmp_path)
    assert first.returncode == 0, first.stderr
    sketched = tmp_path / "sketched.svg"
    (tmp_path / "out.svg").rename(sketched)
    (layer,) = sketch_layers(sketched)
    paths = {p.get("id"): (p.get("d"), p.get("style")) for p in layer.iter(SVG + "path")}
    moving = list(paths)[:2]

    out = fast(setup, "clipasso_refine.py", [*(f"--id={i}" for i in moving), "--lock=unselected", "--iterations=3",
                                             "--open_preview=false", "--background=false", "--preset=fast"], sketched, tmp_path)
    assert out.returncode == 0, out.stderr
    (after,) = sketch_layers(tmp_path / "out.svg")
    refined = {p.get("id"): (p.get("d"), p.get("style")) for p in after.iter(SVG + "path")}
    assert list(refined) == list(paths)
    for pid, (d, style) in refined.items():
        assert style == paths[pid][1]
        if pid not in moving:
            assert d == paths[pid][0]              # locked: not even rewritten
    assert any(refined[p][0] != paths[p][0] for p in moving)
    assert elements_outside_sketch(tmp_path / "out.svg") == elements_outside_sketch(sketched)


def sideways_jpeg() -> bytes:
    """A portrait shot as a phone stores it: pixels on their side (64 wide, 48 high) plus EXIF
    Orientation 6, so it is shown (by Inkscape and by the engine) 48 wide, 64 high."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(small_photo()).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_sideways_jpeg_sketch_and_refine_stay_in_place(setup, tmp_path):
    """Strokes of an EXIF-turned photo land on it, and Refine takes them to the engine's pixels
    and back in the same orientation (one step moves a stroke by a pixel or so, no more)."""
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(sideways_jpeg(), "image/jpeg")))
    first = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args(strokes=4)], doc, tmp_path)
    assert first.returncode == 0, first.stderr
    sketched = tmp_path / "sketched.svg"
    (tmp_path / "out.svg").rename(sketched)
    (layer,) = check_sketch(doc, sketched, [4])
    # shown 48 × 64 in the 160 × 120 box (meet): the picture spans x 55 to 145, not 20 to 180
    before = path_points(layer)
    assert before[:, 0].min() > 55 - 10 and before[:, 0].max() < 145 + 10

    ids = [p.get("id") for p in layer.iter(SVG + "path")]
    out = fast(setup, "clipasso_refine.py", [*(f"--id={i}" for i in ids), "--iterations=1", "--open_preview=false", "--background=false", "--preset=fast"],
               sketched, tmp_path)
    assert out.returncode == 0, out.stderr
    # no output: the best strokes were the starting ones, which came back exactly where they were
    refined = tmp_path / "out.svg" if (tmp_path / "out.svg").exists() else sketched
    (after,) = sketch_layers(refined)
    moved = np.abs(path_points(after) - before).max()
    assert moved < 5, moved


@pytest.mark.parametrize(
    "case, ids, href, message",
    [
        ("nothing selected", ["frame"], None, "Select a photo"),
        ("two images", ["img1", "img2"], None, "2 images are selected"),
        ("not an image", ["img1"], data_uri(b"plain text, not pixels " * 4), "not a PNG, JPEG"),
        ("damaged base64", ["img1"], "data:image/png;base64,@@@@", "damaged"),
        ("missing file", ["img1"], "photos/nowhere.png", "photos/nowhere.png was not found"),
        ("web link", ["img1"], "https://example.com/cat.png", "linked from the web"),
        ("special file", ["img1"], "/proc/self/mem", "cannot be read"),
    ],
)
def test_bad_selections_and_images_leave_the_document_alone(setup, tmp_path, case, ids, href, message):
    doc = tmp_path / "in.svg"
    text = framed_document(href or data_uri(png_bytes(small_photo())))
    if case == "two images":
        text = text.replace('<text id="caption"', f'<image id="img2" width="10" height="10" xlink:href="{data_uri(png_bytes(small_photo()))}"/><text id="caption"')
    doc.write_text(text)
    out = fast(setup, "clipasso_sketch.py", [*(f"--id={i}" for i in ids), *sketch_args()], doc, tmp_path)
    assert out.returncode == ABORT_STATUS, out.stderr
    assert message in out.stderr and out.stdout == ""
    assert not (tmp_path / "out.svg").exists() and doc.read_text() == text


@pytest.mark.parametrize("values, message", [({"job_timeout": "soon"}, 'job_timeout = "soon"'),
                                             ({"start_timeout": -5}, "start_timeout = -5")])
def test_a_bad_settings_file_value_is_one_message(setup, tmp_path, values, message):
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    out = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args()], doc, tmp_path, isolated_config(setup, tmp_path, **values))
    assert out.returncode == ABORT_STATUS and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "out.svg").exists()


def isolated_config(setup, tmp_path: Path, **values) -> dict:
    """A config dir of its own (so no engine of the module's is found), with ``values``."""
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(values))
    return dict(setup["env"], CLIPASSO_CONFIG_DIR=str(folder))


def test_engine_unreachable(setup, tmp_path):
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    remote = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args(engine_url="http://engine.invalid:8765")], doc, tmp_path)
    assert remote.returncode == ABORT_STATUS and "No CLIPasso engine answers at http://engine.invalid:8765" in remote.stderr

    env = isolated_config(setup, tmp_path, engine_url=f"http://127.0.0.1:{free_port()}", engine_python=str(tmp_path / "no-python"))
    local = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args()], doc, tmp_path, env)
    assert local.returncode == ABORT_STATUS and "no engine installed to start" in local.stderr and "install.py" in local.stderr
    assert not (tmp_path / "out.svg").exists()


def test_a_port_held_by_a_program_that_never_answers_is_named(setup, tmp_path):
    """Something takes connections at the engine's port and never answers: the message says so
    (after the short health wait), instead of starting an engine that cannot bind there."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(16)                                    # connections complete, nothing is ever read or sent
    url = f"http://127.0.0.1:{holder.getsockname()[1]}"
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    env = isolated_config(setup, tmp_path, engine_url=url, engine_python=sys.executable)
    try:
        out = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args()], doc, tmp_path, env)
    finally:
        holder.close()
    assert out.returncode == ABORT_STATUS, out.stderr
    assert f"Something at {url} takes connections but sent no answer" in out.stderr and "another program" in out.stderr
    assert not (tmp_path / "config" / "engine.log").exists()          # no engine was started
    assert not (tmp_path / "out.svg").exists()


def test_another_web_app_at_the_engine_url(setup, tmp_path):
    """A web page answers at the engine's port: a message saying so, not a traceback."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!DOCTYPE html><title>Some other app</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        out = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args(engine_url=url)], doc, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == ABORT_STATUS, out.stderr
    assert f"Something other than a CLIPasso engine answers at {url}" in out.stderr and "Traceback" not in out.stderr
    assert "Set another engine URL" in out.stderr and not (tmp_path / "out.svg").exists()


@needs_inkscape
def test_missing_weights_in_the_designers_words(setup, tmp_path):
    """An engine without its model files, as a new user meets it: real Inkscape runs Sketch (in
    the background: a message box would block headless Inkscape, docs/inkscape.md §3.1), the
    engine the extension started with its defaults fails the job as a weights error, and the
    messages the designer reads (Insert finished sketches, Engine status, run as Inkscape runs
    them) name both files and the one folder, or install.py: no flag, variable or test model."""
    doc, placed = tmp_path / "in.svg", tmp_path / "placed.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    env = isolated_config(setup, tmp_path, engine_url=f"http://127.0.0.1:{free_port()}", engine_python=sys.executable)
    env = {k: v for k, v in env.items() if k not in ("CLIPASSO_CLIP", "CLIPASSO_SALIENCY_CLIP", "HF_HOME", "HF_HUB_CACHE")}
    weights = tmp_path / "weights"
    env.update(CLIPASSO_CLIP_DIR=str(weights), XDG_CACHE_HOME=str(tmp_path / "cache"))
    write_preferences(setup["profile"], "org.clipasso.sketch",
                      {"strokes": 4, "iterations": 2, "preset": "fast", "open_preview": "false", "background": "true"})
    try:
        run = run_inkscape(doc, f"select-by-id:img1;org.clipasso.sketch.noprefs;export-filename:{placed};export-do",
                           env, tmp_path)
        assert run.returncode == 0, run.stderr
        (job,) = [el.get(CLIPASSO_NS + "job") for el in etree.parse(str(placed)).iter() if el.get(CLIPASSO_NS + "job")]
        engine = installed_client(setup, tmp_path / "config",
                                  json.loads((tmp_path / "config" / "config.json").read_text())["engine_url"])
        with pytest.raises(installed_client_module(setup).JobFailed) as failed:
            engine.wait(job, poll=0.2, timeout=120)
        assert failed.value.kind == "weights" and failed.value.detail["missing"] == ["RN101.pt", "ViT-B-32.pt"]

        message = (f"the model files RN101.pt and ViT-B-32.pt are missing. Put them in the folder {weights}, "
                   "or run install.py again with a network connection")
        insert = fast(setup, "clipasso_insert.py", [], placed, tmp_path, env)
        status = fast(setup, "clipasso_status.py", [], doc, tmp_path, env)
        assert insert.returncode == 0 and message in insert.stderr, insert.stderr
        assert status.returncode == ABORT_STATUS and message in status.stderr, status.stderr
        for word in ("--", "CLIPASSO_", "random:", "Traceback"):
            assert word not in insert.stderr + status.stderr
    finally:
        kill_engine(tmp_path / "config")


def test_engine_that_fails_to_start_points_at_its_log(setup, tmp_path):
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'engine: cannot import torch' >&2\nexit 3\n")
    broken.chmod(0o755)
    env = isolated_config(setup, tmp_path, engine_url=f"http://127.0.0.1:{free_port()}", engine_python=str(broken))
    out = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args()], doc, tmp_path, env)
    log = tmp_path / "config" / "engine.log"
    assert out.returncode == ABORT_STATUS and "stopped right after starting (exit status 3)" in out.stderr
    assert str(log) in out.stderr and "cannot import torch" in log.read_text()
    assert not (tmp_path / "out.svg").exists()


def test_timeout_cancels_the_job_and_leaves_the_framed_document(setup, tmp_path):
    """A job that outlives job_timeout (1 s here) is cancelled in the engine; nothing is written."""
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    config_file = setup["config"] / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "job_timeout": 1}))
    try:
        out = fast(setup, "clipasso_sketch.py", ["--id=img1", *sketch_args(iterations=5000, strokes=5)], doc, tmp_path)
    finally:
        config_file.write_text(json.dumps(config))
    assert out.returncode == ABORT_STATUS and "cancelled" in out.stderr and "unchanged" in out.stderr
    assert not (tmp_path / "out.svg").exists()

    client = installed_client(setup)
    deadline = time.monotonic() + 30
    while client.jobs()[0]["state"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.jobs()[0]["state"] == "cancelled"


def test_job_cancelled_in_the_engine_leaves_the_framed_document(setup, tmp_path):
    """Cancel pressed on the live preview page (here: the same DELETE call) while Inkscape waits."""
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(fast, setup, "clipasso_sketch.py", ["--id=img1", *sketch_args(iterations=3000, strokes=6)], doc, tmp_path)
        deadline = time.monotonic() + 120
        while not run.done() and time.monotonic() < deadline:
            active = active_jobs(setup)
            if active:
                installed_client(setup).cancel(active[0]["id"])
                break
            time.sleep(0.2)
        out = run.result()
    assert out.returncode == ABORT_STATUS and "The sketch was cancelled. The document is unchanged." in out.stderr
    assert not (tmp_path / "out.svg").exists()


def active_jobs(setup) -> list:
    """The engine's queued or running jobs; none while the engine is still starting (no token
    yet, or not listening yet)."""
    try:
        return [j for j in installed_client(setup).jobs() if j["state"] in ("queued", "running")]
    except installed_client_module(setup).EngineError:
        return []


def test_status_reports_the_engine(setup, tmp_path):
    doc = tmp_path / "in.svg"
    doc.write_text(framed_document(data_uri(png_bytes(small_photo()))))
    out = fast(setup, "clipasso_status.py", [], doc, tmp_path)
    assert out.returncode == ABORT_STATUS, out.stderr
    assert f"is running at {setup['url']}" in out.stderr and "RANDOM test weights" in out.stderr
    env = isolated_config(setup, tmp_path, engine_url=f"http://127.0.0.1:{free_port()}")
    off = fast(setup, "clipasso_status.py", ["--start=false"], doc, tmp_path, env)
    assert off.returncode == ABORT_STATUS and "No CLIPasso engine is running" in off.stderr
