"""Shared by the extension's tests: inkex in this Python, test images, installing into a
temporary Inkscape profile, and running the extension the fast way or in real Inkscape."""

from __future__ import annotations

import base64
import importlib
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXTENSION_DIR = REPO / "extension"
SYSTEM_EXTENSIONS = Path("/usr/share/inkscape/extensions")  # Debian's Inkscape: its inkex lives here
INKSCAPE_PYTHON = "/usr/bin/python3"                          # what Debian's Inkscape runs extensions with
ABORT_STATUS = 251                                            # inkex.AbortExtension's exit status


def import_extension_modules() -> None:
    """Make ``inkex`` (an installed one, else Debian's Inkscape's) and ``extension/`` importable
    here, or skip the test when no inkex exists at all."""
    try:
        import inkex  # noqa: F401
    except ImportError:
        if not (SYSTEM_EXTENSIONS / "inkex").is_dir():
            pytest.skip("inkex is not available (install Inkscape, or inkex with --no-deps)")
        sys.path.append(str(SYSTEM_EXTENSIONS))
    if str(EXTENSION_DIR) not in sys.path:
        sys.path.insert(0, str(EXTENSION_DIR))
    import clipasso_engine.limits   # the extension modules import its installed copy at once

    sys.modules.setdefault("clipasso_limits", clipasso_engine.limits)


def load_install() -> Any:
    """install.py as a fresh module (it is a script beside the package, not part of it)."""
    spec = importlib.util.spec_from_file_location("install_for_tests", REPO / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


install = load_install()
SHARED = install.SHARED          # engine module file -> the name of its copy beside the extension
# the engine modules install.py copies beside the extension, by the names the extension imports them
SHARED_COPIES = {copy[: -len(".py")]: "clipasso_engine." + source[: -len(".py")] for source, copy in SHARED.items()}


def use_engine_modules_as_copies(monkeypatch) -> None:
    """Make the extension's ``import clipasso_client`` (and the other shared copies) find the
    engine's own modules, as an installed extension finds their copies."""
    for name, module in SHARED_COPIES.items():
        monkeypatch.setitem(sys.modules, name, importlib.import_module(module))


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG file bytes of an ``(H, W, 3)`` uint8 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def small_photo(width: int = 64, height: int = 48) -> np.ndarray:
    """A small white RGB photo with a dark square and a grey bar (proportions of 64×48): something
    for the saliency start and the loss to hold on to, cheap with the tiny random towers."""
    pixels = np.full((height, width, 3), 255, np.uint8)
    pixels[height // 4:height * 3 // 4, width * 5 // 16:width * 11 // 16] = 30
    pixels[height * 5 // 6:height * 11 // 12, width // 16:width * 15 // 16] = 90
    return pixels


def data_uri(data: bytes, mime: str = "image/png", wrap: int = 0) -> str:
    """A base64 data URI, optionally wrapped across lines the way Inkscape writes them."""
    text = base64.b64encode(data).decode("ascii")
    if wrap:
        text = "\n".join(text[i : i + wrap] for i in range(0, len(text), wrap))
    return f"data:{mime};base64,{text}"


IMAGE_BOX = (20, 30, 160, 120)    # the photo of framed_document: small_photo()'s 64×48 px at 2.5 user units per pixel


def framed_document(href: str) -> str:
    """The extension tests' document: layer1 (moved by translate(5 7)) holds a frame, the photo
    img1 from ``href`` at ``IMAGE_BOX`` and a caption; layer2 a circle."""
    x, y, w, h = IMAGE_BOX
    return svg_document(
        '<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photo" transform="translate(5 7)">'
        '<rect id="frame" x="10" y="20" width="180" height="140" style="fill:none;stroke:#888"/>'
        f'<image id="img1" x="{x}" y="{y}" width="{w}" height="{h}" xlink:href="{href}"/>'
        '<text id="caption" x="20" y="175">cat</text></g>'
        '<g id="layer2" inkscape:groupmode="layer" inkscape:label="Notes"><circle id="c1" cx="5" cy="5" r="3"/></g>'
    )


def photo_document(pixels: np.ndarray, extra: str = "") -> str:
    """A document the size of the photo ``pixels`` (one user unit per pixel) whose layer
    ``layer1`` holds the photo as the embedded image ``img1``, then ``extra`` markup."""
    height, width = pixels.shape[:2]
    return svg_document(
        '<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photo">'
        f'<image id="img1" x="0" y="0" width="{width}" height="{height}" xlink:href="{data_uri(png_bytes(pixels))}"/>'
        f'{extra}</g>', width=width, height=height, view_box=f"0 0 {width} {height}")


def svg_document(body: str, width: float = 200, height: float = 200, view_box: str = "0 0 200 200") -> str:
    """An Inkscape-flavoured SVG document around ``body``."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" '
        'xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" '
        f'width="{width}" height="{height}" viewBox="{view_box}">{body}</svg>'
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_inkscape() -> bool:
    return bool(shutil.which("inkscape") and shutil.which("xvfb-run"))


needs_inkscape = pytest.mark.skipif(not has_inkscape(), reason="needs Debian's inkscape and xvfb-run")
needs_inkscape_python = pytest.mark.skipif(
    not (Path(INKSCAPE_PYTHON).exists() and (SYSTEM_EXTENSIONS / "inkex").is_dir()),
    reason="needs Inkscape's Python and its inkex (Debian's inkscape package)",
)


def run_install(args: Sequence[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python install.py ARGS`` with this interpreter and ``env``."""
    return subprocess.run(
        [sys.executable, str(REPO / "install.py"), *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )


def run_fast(
    script: Path, args: Sequence[str], document: Path, output: Path, env: dict, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run an installed extension script the way Inkscape does, without Inkscape:
    Inkscape's Python with Inkscape's inkex on the path."""
    env = dict(env, PYTHONPATH=str(SYSTEM_EXTENSIONS))
    return subprocess.run(
        [INKSCAPE_PYTHON, str(script), *args, f"--output={output}", str(document)],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=script.parent,
    )


def write_preferences(profile: Path, extension_id: str, params: dict) -> None:
    """Parameters for ``<extension id>.noprefs`` runs: Inkscape reads them from preferences.xml."""
    attrs = " ".join(f'{extension_id}.{k}="{v}"' for k, v in params.items())
    (profile / "preferences.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<inkscape xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" '
        'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" version="1">\n'
        f'  <group id="extensions" {attrs} />\n</inkscape>\n'
    )


def run_inkscape(
    document: Path, actions: str, env: dict, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Real Inkscape, headless under Xvfb, with ``--batch-process --actions=…`` (docs/inkscape.md)."""
    return subprocess.run(
        ["xvfb-run", "-a", "inkscape", "--batch-process", f"--actions={actions}", str(document)],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )


def engine_pid(config_dir: Path) -> Optional[int]:
    """The pid of the engine the extension started (it records it in ``engine.pid``)."""
    try:
        return int(json.loads((config_dir / "engine.pid").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left unreaped by a container's init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_engine(config_dir: Path) -> None:
    """Stop the engine an extension run started for this test (by its recorded pid)."""
    pid = engine_pid(config_dir)
    if pid is None or not running(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(pid):
        os.kill(pid, signal.SIGKILL)


def install_for_tests(root: Path, **extra_env: str) -> dict:
    """install.py into a temporary Inkscape profile and config dir under ``root``, the engine
    URL on an unused port, tiny random CLIP towers: what a module of extension tests shares.
    ``kill_engine(setup["config"])`` stops the engine its runs started."""
    profile, config = root / "profile", root / "config"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPASSO_", "INKSCAPE_"))}
    env.update(
        INKSCAPE_PROFILE_DIR=str(profile),
        XDG_DATA_HOME=str(root / "xdg"),
        CLIPASSO_CONFIG_DIR=str(config),
        CLIPASSO_CLIP="random:tiny-RN",
        CLIPASSO_SALIENCY_CLIP="random:tiny-ViT",
        CLIPASSO_CLIP_DIR=str(root / "weights"),      # no real weights, whatever this machine has
        **extra_env,
    )
    url = f"http://127.0.0.1:{free_port()}"
    out = run_install(["--python", sys.executable, "--no-weights", "--inkscape-profile", str(profile), "--engine-url", url], env)
    assert out.returncode == 0, out.stdout + out.stderr
    return {"root": root, "profile": profile, "config": config, "env": env, "url": url,
            "scripts": profile / "extensions" / "clipasso"}


def picture_workspace(photo: np.ndarray, extra: str = "") -> tuple[dict, Path]:
    """For the scripts that make the README's pictures: a new temporary folder with the
    extension installed (tiny random towers, see :func:`install_for_tests`) and ``in.svg`` there
    holding ``photo`` (:func:`photo_document`); the setup and the document's path."""
    root = Path(tempfile.mkdtemp(prefix="clipasso-pictures-"))
    setup = install_for_tests(root)
    doc = root / "in.svg"
    doc.write_text(photo_document(photo, extra))
    return setup, doc


def installed_client_module(setup: dict):
    """The installed copy of the engine client (the module the extension itself uses)."""
    if str(setup["scripts"]) not in sys.path:
        sys.path.insert(0, str(setup["scripts"]))
    import clipasso_client

    return clipasso_client


def installed_client(setup: dict, config: Optional[Path] = None, url: Optional[str] = None):
    """A client of the engine of ``setup`` (or of ``url`` with the token in ``config``)."""
    module = installed_client_module(setup)
    return module.EngineClient(url or setup["url"], module.read_token(str(config or setup["config"])))
