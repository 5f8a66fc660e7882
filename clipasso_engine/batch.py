"""Sketch many photos: one SVG per image in an output folder, a report, resumable.

``run_batch(inputs, outdir, settings)`` finds the images (files as given, folders by extension,
not recursive), names each output after its photo (``OUTDIR/<stem>.svg``, with ``.json`` and
``.png`` when asked), skips the images already done with the same settings, sketches the rest
through a *runner* and writes ``OUTDIR/batch.json`` after every image, so a stopped batch
resumes where it was.

The runner is the only part that differs between one machine and a cluster: it gets the
recipe (settings and output choices) and the tasks, and yields each task's :class:`Outcome`
as it is finished, in any order. :func:`run_local` sketches one image after the other in this
process; ``ray_batch.ray_runner`` spreads them over Ray actors. Both compute an image with
:func:`sketch_bytes` (photo bytes in, output file contents out), so they give the same files
for the same seeds, and only this process touches OUTDIR: workers need no shared disk.

A bad image is an outcome (``failed``, with its message) and the batch goes on; a problem that
would fail every image (no images, two photos with one output name, missing CLIP weights) is an
exception before any image is sketched.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

from . import __version__
from .errors import SettingsError
from .settings import SketchSettings

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
REPORT_NAME = "batch.json"
DONE = ("ok", "skipped")


class BatchError(SettingsError):
    """The batch cannot run at all (no images, two images with one output name, an output
    folder that is a file, workers that cannot load the models); the message says why."""


@dataclass(frozen=True)
class Recipe:
    """How every image of the batch is sketched: the settings, which files to write besides
    the SVG, and whether missing CLIP weights may be downloaded. Picklable (sent to workers)."""

    settings: SketchSettings
    png: bool = False
    json_out: bool = False
    download: bool = False


@dataclass(frozen=True)
class Task:
    """One image: ``name`` is the output stem (``OUTDIR/<name>.svg``), ``key`` the hash of the
    image bytes and the recipe that decides whether existing outputs can be kept."""

    name: str
    path: Path
    key: str


@dataclass
class Outcome:
    """What sketching one image gave. ``files``: (path relative to OUTDIR, contents) of every
    output; empty when ``status`` is ``failed`` (then ``error`` says why). ``seconds``: wall
    time of the sketch where it ran; ``device`` and ``worker`` (host:pid): where that was."""

    status: str
    seconds: float
    loss: Optional[float] = None
    seed: Optional[int] = None
    error: Optional[str] = None
    device: Optional[str] = None
    random_weights: bool = False
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")   # host:pid that computed it
    files: list[tuple[Path, bytes]] = field(default_factory=list)


Runner = Callable[[Recipe, Sequence[Task]], Iterator[tuple[Task, Outcome]]]


@dataclass
class BatchReport:
    """The result of one :func:`run_batch` call: ``images`` maps each image of this run to its
    report entry (``input``, ``status`` = ok / skipped / failed, ``seconds``, ``loss``,
    ``seed``, ``error``, ``outputs``, ``key``); ``path`` is the report file."""

    path: Path
    images: dict[str, dict] = field(default_factory=dict)
    random_weights: bool = False

    def count(self, status: str) -> int:
        return sum(1 for e in self.images.values() if e["status"] == status)

    @property
    def failed(self) -> int:
        return self.count("failed")


def find_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The photos named by ``inputs``: a file is taken as given (whatever its extension; a file
    that is not an image fails as that image), a folder gives its image files (by extension,
    not recursive, hidden files left out), sorted. The same file named twice counts once."""
    found: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            children = sorted(c for c in p.iterdir()
                              if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES and not c.name.startswith("."))
        elif p.exists():
            children = [p]
        else:
            raise BatchError(f"{p}: no such file or folder")
        for c in children:
            if c.resolve() not in seen:
                seen.add(c.resolve())
                found.append(c)
    if not found:
        raise BatchError("no images found in " + ", ".join(str(i) for i in inputs)
                         + f" (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def recipe_hash(recipe: Recipe) -> str:
    """SHA-256 of what decides the outputs: engine version, settings (all but ``device``: a
    batch begun on one machine resumes on another) and which files are written."""
    settings = recipe.settings.model_dump(mode="json", exclude={"device"})
    text = json.dumps({"engine": __version__, "settings": settings, "png": recipe.png, "json": recipe.json_out},
                      sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan(images: Sequence[Path], recipe: Recipe) -> list[Task]:
    """One task per image with its output name and key. Raises ``BatchError`` when two images
    would write the same outputs (``a/cat.jpg`` and ``b/cat.png``) or one would overwrite the
    report (an image named ``batch`` with ``json_out``)."""
    by_name: dict[str, list[Path]] = {}
    for p in images:
        by_name.setdefault(p.stem, []).append(p)
    clashes = {n: ps for n, ps in by_name.items() if len(ps) > 1}
    if clashes:
        listed = "; ".join(f"{', '.join(str(p) for p in ps)} → {n}.svg" for n, ps in sorted(clashes.items()))
        raise BatchError(f"photos with the same name would overwrite each other's sketch: {listed}; "
                         "rename them or run them into different output folders")
    if recipe.json_out and Path(REPORT_NAME).stem in by_name:
        raise BatchError(f"{by_name['batch'][0]}: its strokes JSON would overwrite the report {REPORT_NAME}; "
                         "rename the photo or leave out the JSON")
    settings_hash = recipe_hash(recipe)
    tasks = []
    for p in images:
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            digest = "unreadable"      # the runner reads it again and reports the error as this image's
        tasks.append(Task(p.stem, p, hashlib.sha256(f"{settings_hash}:{digest}".encode()).hexdigest()))
    return tasks


def warm_models(recipe: Recipe) -> str:
    """Load the CLIP models of ``recipe`` on its device now (they are cached per device for
    the life of the process), so missing weights fail before the first image. Returns the
    device."""
    from .devices import resolve_device
    from .clip_models import get_clip

    s = recipe.settings
    device = resolve_device(s.device)
    get_clip(s.clip, device, download=recipe.download)
    if s.saliency:
        get_clip(s.saliency_clip, device, download=recipe.download)
    return str(device)


def sketch_bytes(recipe: Recipe, name: str, data: bytes) -> Outcome:
    """Sketch one photo (its file's bytes) and render its output files, named ``<name>.svg``
    etc. A problem with this image is a ``failed`` outcome; missing weights raise
    ``WeightsMissingError`` (they would fail every image)."""
    import torch

    from .api import sketch
    from .clip_weights import WeightsMissingError
    from .image import ImageError

    started = time.perf_counter()

    def failed(message: str) -> Outcome:
        return Outcome("failed", round(time.perf_counter() - started, 3), error=message)

    try:
        result = sketch(data, recipe.settings, download=recipe.download)
        files = result.output_files(Path(f"{name}.svg"), json_path=Path(f"{name}.json") if recipe.json_out else None,
                                    png=Path(f"{name}.png") if recipe.png else None)
    except WeightsMissingError:
        raise
    except ImageError as exc:
        return failed(str(exc))
    except torch.cuda.OutOfMemoryError:
        return failed("the GPU ran out of memory: lower --seeds, --levels or --augmentations")
    except Exception as exc:           # one odd image must not stop a batch of thousands
        return failed(f"{type(exc).__name__}: {exc}")
    return Outcome("ok", round(time.perf_counter() - started, 3), loss=result.loss, seed=result.seed,
                   device=result.engine["device"], random_weights=result.random_weights, files=files)


def read_task(task: Task) -> bytes | Outcome:
    """The photo's bytes, or a ``failed`` outcome when the file cannot be read."""
    try:
        return task.path.read_bytes()
    except OSError as exc:
        return Outcome("failed", 0.0, error=f"cannot read {task.path}: {exc.strerror or exc}")


def run_local(recipe: Recipe, tasks: Sequence[Task]) -> Iterator[tuple[Task, Outcome]]:
    """The runner of one machine: the images one after the other in this process (the models
    load once)."""
    if not tasks:
        return
    warm_models(recipe)
    for task in tasks:
        data = read_task(task)
        yield task, data if isinstance(data, Outcome) else sketch_bytes(recipe, task.name, data)


def load_report(outdir: Path) -> dict[str, dict]:
    """The image entries of an earlier report in ``outdir`` (none if there is none, or it is
    unreadable: then everything is sketched again)."""
    try:
        data = json.loads((outdir / REPORT_NAME).read_text(encoding="utf-8"))
        images = data["images"]
        return {str(k): dict(v) for k, v in images.items() if isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def run_batch(
    inputs: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    settings: Optional[SketchSettings] = None,
    *,
    png: bool = False,
    json_out: bool = False,
    download: bool = False,
    runner: Optional[Runner] = None,
    on_start: Optional[Callable[[int, int], None]] = None,
    on_image: Optional[Callable[[str, dict], None]] = None,
) -> BatchReport:
    """Sketch every image of ``inputs`` (files and folders) into ``outdir`` (created if missing).

    Writes ``<name>.svg`` per image (``<name>.json`` with ``json_out``; ``<name>.png``, or
    ``<name>-<strokes>.png`` per level, with ``png``), each image's files all or nothing, and
    the report ``batch.json`` after every image. An image whose report entry has the same key
    (image bytes + settings + outputs) and whose outputs all exist is skipped. Entries of
    images not in this run are kept.

    Args:
        runner: how images are computed (default :func:`run_local`; see ``ray_batch``).
        on_start: called once with (images to sketch, images skipped).
        on_image: called after each sketched image with (name, report entry).

    Returns the :class:`BatchReport` of this run. Raises ``BatchError`` when the batch cannot
    start, ``WeightsMissingError`` when CLIP weights are missing.
    """
    from .result import write_all_atomic

    settings = settings or SketchSettings()
    if settings.mask:
        raise BatchError("a batch cannot remove backgrounds: masks are per photo (use `clipasso sketch --mask-image`)")
    recipe = Recipe(settings, png=png, json_out=json_out, download=download)
    out = Path(outdir)
    tasks = plan(find_images(inputs), recipe)       # usage problems surface before OUTDIR is made
    if out.exists() and not out.is_dir():
        raise BatchError(f"output folder {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise BatchError(f"cannot write into output folder {out}")

    entries = load_report(out)
    report = BatchReport(out / REPORT_NAME)
    todo: list[Task] = []
    for t in tasks:
        old = entries.get(t.name)
        if (old and old.get("status") in DONE and old.get("key") == t.key and old.get("outputs")
                and all((out / f).is_file() for f in old["outputs"])):
            entries[t.name] = report.images[t.name] = dict(old, status="skipped", input=str(t.path))
        else:
            todo.append(t)
    _write_report(out, entries, recipe, report)
    if on_start is not None:
        on_start(len(todo), len(tasks) - len(todo))

    for task, outcome in (runner or run_local)(recipe, todo):
        if outcome.status == "ok":
            try:
                write_all_atomic([(out / rel, data) for rel, data in outcome.files])
            except OSError as exc:
                outcome = Outcome("failed", outcome.seconds, error=f"cannot write into {out}: {exc.strerror or exc}")
        report.random_weights |= outcome.random_weights
        entry = {
            "input": str(task.path),
            "status": outcome.status,
            "seconds": outcome.seconds,
            "loss": outcome.loss,
            "seed": outcome.seed,
            "error": outcome.error,
            "device": outcome.device,
            "worker": outcome.worker,
            "outputs": [str(rel) for rel, _ in outcome.files] if outcome.status == "ok" else [],
            "key": task.key,
        }
        entries[task.name] = report.images[task.name] = entry
        _write_report(out, entries, recipe, report)
        if on_image is not None:
            on_image(task.name, entry)
    return report


def _write_report(out: Path, entries: dict[str, dict], recipe: Recipe, report: BatchReport) -> None:
    from .result import write_all_atomic

    data = {
        "engine": "clipasso-inkscape",
        "version": __version__,
        "settings": recipe.settings.model_dump(mode="json"),
        "outputs": {"svg": True, "png": recipe.png, "json": recipe.json_out},
        "summary": {s: report.count(s) for s in ("ok", "skipped", "failed")},
        "images": dict(sorted(entries.items())),
    }
    write_all_atomic([(out / REPORT_NAME, json.dumps(data, indent=1).encode("utf-8"))])


__all__ = ["BatchError", "BatchReport", "Outcome", "Recipe", "Task", "find_images", "run_batch", "run_local",
           "sketch_bytes", "warm_models"]
