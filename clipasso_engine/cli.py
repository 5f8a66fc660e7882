"""The ``clipasso`` command: ``sketch``, ``batch``, ``serve``, ``models``, ``doctor``.

Every failure the user can fix (a :class:`~clipasso_engine.errors.ClipassoError`, or the
system's ``OSError`` on a file) ends as one line ``clipasso: error: …`` on stderr and exit
status 2; anything else is a bug: its traceback goes to ``cli.log`` in the config folder and the
user reads "internal error, see <log>" (exit status 1); output files are written only when the whole job succeeded, each atomically. ``batch``
goes on past a photo that fails and ends with status 1 when any did.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence

from . import __version__
from .errors import ClipassoError
from .limits import DEVICE_NAMES

EXIT_USAGE = 2
EXIT_INTERNAL = 1
CLI_LOG = "cli.log"


class CliError(ClipassoError):
    """A message for the user about the command line; printed as one line."""

    kind = "usage"


def sample_image() -> Path:
    """The bundled photo (scikit-image's CC0 "Chelsea the cat")."""
    return Path(str(resources.files("clipasso_engine") / "assets" / "sample.jpg"))


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers like 4,8,16,32, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipasso", description="Photo → abstract line sketch of a few Bézier strokes (CLIPasso).")
    p.add_argument("--version", action="version", version=f"clipasso-inkscape {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sketch", help="sketch a photo into an SVG", argument_default=argparse.SUPPRESS)
    s.add_argument("image", nargs="?", help="photo (PNG, JPEG, WebP, GIF, BMP or TIFF); default: the bundled sample photo")
    s.add_argument("-o", "--output", required=True, help="SVG file to write")
    _add_settings_options(s)
    s.add_argument("--mask", action=argparse.BooleanOptionalAction, help="remove the background using --mask-image")
    s.add_argument("--mask-image", dest="mask_image", help="foreground mask (white = keep), same size as the photo")
    s.add_argument("--init-svg", dest="init_svg", help="start from the strokes of this SVG (e.g. an edited sketch)")
    s.add_argument("--lock", type=_int_list, help="with --init-svg: indices of strokes that must not move, e.g. 0,3")
    s.add_argument("--png", help="also write the sketch as PNG (one file per level: NAME-<strokes>.png)")
    s.add_argument("--json", dest="json_out", help="also write the strokes JSON")
    s.add_argument("--no-download", dest="no_download", action="store_true",
                   help="never fetch missing CLIP weights (by default they are downloaded once, on first use)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.add_argument("--engine", metavar="URL", help="compute in a running engine (clipasso serve), e.g. http://127.0.0.1:8765")

    _add_batch_parser(sub)

    m = sub.add_parser("models", help="which CLIP weights are present and where to put them")
    m.add_argument("--download", metavar="NAME", nargs="+",
                   help="download the weights of these models (RN101 ViT-B-32, or RN50-cc12m, RN101-yfcc15m) into "
                        "the weights folder")
    sub.add_parser("doctor", help="check the installation: Python, torch, devices, CLIP weights")

    v = sub.add_parser("serve", help="run the engine as a local HTTP service (job queue, live preview page)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    v.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    v.add_argument("--device", choices=DEVICE_NAMES, default="auto", help="where jobs run (default auto)")
    v.add_argument("--max-queue", dest="max_queue", type=int, default=32, help="jobs that may wait (default 32)")
    v.add_argument("--checkpoint-seconds", dest="checkpoint_seconds", type=float, default=None, metavar="S",
                   help="seconds between checkpoints of a running job (default $CLIPASSO_CHECKPOINT_SECONDS or 5)")
    v.add_argument("--jobs-max-mb", dest="jobs_max_mb", type=float, default=1024, metavar="MB",
                   help="disk space for kept jobs in the config folder; the oldest finished go first (default 1024)")
    v.add_argument("--allow-host", dest="allow_hosts", action="append", default=[], metavar="NAME[:PORT]",
                   help="also answer to this Host name (the machine's name with a non-loopback --host, "
                        "or localhost:PORT for an SSH tunnel's local port)")
    v.add_argument("--allow-model-paths", dest="allow_model_paths", action="store_true",
                   help="let jobs name CLIP weights files anywhere on this machine (by default only files in the "
                        "weights folders that `clipasso models` lists)")
    return p


_FLAG_METAVARS = {"regions": "FILE.json", "geometric_weights": "STAGE=W,…", "levels": "N,N,…"}
_BY_HAND = {"mask"}       # a flag of ``sketch`` only, added there beside --mask-image


def _add_settings_options(s: argparse.ArgumentParser) -> None:
    """One flag per SketchSettings field, generated from the field (name, type, choices,
    description), so a new setting is on the command line as soon as it exists. Shared by
    ``sketch`` and ``batch`` (parsers made with ``argument_default=SUPPRESS``: a flag not given
    stays unset and the preset or the field's default fills it)."""
    from .settings import PRESET_FIELDS, SketchSettings

    types = {"levels": _int_list, "regions": _regions_file, "geometric_weights": _stage_weights}
    for name, field in SketchSettings.model_fields.items():
        if name in _BY_HAND:
            continue
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        help_text = field.description or name
        default = field.get_default(call_default_factory=True)
        if default is not None and name not in ("clip", "saliency_clip", "regions", *PRESET_FIELDS):
            help_text += f" (default {default})"
        kind, choices = _plain_type(field.annotation)
        kwargs: dict[str, Any] = {"dest": name, "help": help_text.replace("%", "%%")}
        if name in types:
            kwargs.update(type=types[name], metavar=_FLAG_METAVARS.get(name))
        elif kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif choices:
            kwargs.update(choices=choices, type=kind)
        else:
            kwargs["type"] = kind
        s.add_argument(*flags, **kwargs)


def _plain_type(annotation: Any) -> tuple[Any, Optional[list[Any]]]:
    """(python type, choices or None) of a field's annotation, ``Optional`` removed."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return _plain_type(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        values = list(typing.get_args(annotation))
        return type(values[0]), values
    return annotation, None


def _stage_weights(text: str) -> dict[str, float]:
    """``layer2=1,layer3=0.5`` → the geometric loss weight per RN101 stage."""
    try:
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected STAGE=WEIGHT pairs like layer2=1,layer3=1, got {text!r}") from None


def _regions_file(path: str) -> list:
    """The list in a ``--regions`` JSON file (each entry is checked as ``SketchSettings.regions``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise argparse.ArgumentTypeError(f"{path} must hold a JSON list of {{\"role\", \"polygon\"}} objects")
    return data



def _add_batch_parser(sub: Any) -> None:
    b = sub.add_parser("batch", help="sketch many photos (files, folders) into a folder, resumably",
                       argument_default=argparse.SUPPRESS,
                       description="One sketch per photo: OUTDIR/<name>.svg (+ .json, .png), a report OUTDIR/batch.json. "
                                   "Photos already sketched with the same settings are skipped, so an interrupted batch "
                                   "resumes. Exit status 0 when every photo succeeded, 1 when any failed.")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, and folders of photos (by extension, not recursive)")
    b.add_argument("-o", "--output", dest="outdir", required=True, metavar="OUTDIR", help="folder for the sketches (created if missing)")
    _add_settings_options(b)
    b.add_argument("--png", action="store_true", help="also write OUTDIR/<name>.png (one per level: <name>-<strokes>.png)")
    b.add_argument("--json", dest="json_out", action="store_true", help="also write the strokes JSON OUTDIR/<name>.json")
    b.add_argument("--no-download", dest="no_download", action="store_true",
                   help="never fetch missing CLIP weights (by default they are downloaded once, on first use)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="compute on Ray: join the cluster at ADDRESS (e.g. 10.0.0.1:6379, or auto), or start a local "
                        "Ray without one; put it after the photos (or write --ray=ADDRESS). Needs clipasso-inkscape[ray]")
    b.add_argument("--gpus-per-sketch", dest="gpus_per_sketch", type=float, metavar="F",
                   help="with --ray: share of a GPU each sketch holds, e.g. 0.25 = four per GPU (default 1 where the cluster "
                        "has GPUs, else 0)")
    b.add_argument("--cpus-per-sketch", dest="cpus_per_sketch", type=float, metavar="N",
                   help="with --ray: CPU cores each sketch holds (default 1; also its torch threads on CPU)")


EXIT_FAILED = 1
RANDOM_WEIGHTS_WARNING = "clipasso: warning: RANDOM CLIP WEIGHTS were used: this is a test of the machinery, not a real sketch"


def settings_from_args(args: argparse.Namespace) -> Any:
    """The SketchSettings of the setting flags given (the parsers leave a flag not given out of
    ``args``: the preset or the field's default fills it). Raises pydantic's ValidationError."""
    from .settings import SketchSettings

    return SketchSettings(**{k: v for k, v in vars(args).items() if k in SketchSettings.model_fields})


def _settings(args: argparse.Namespace) -> Any:
    """:func:`settings_from_args`, a bad value a CliError naming the flag."""
    from pydantic import ValidationError

    try:
        return settings_from_args(args)
    except ValidationError as exc:
        raise CliError(_validation_message(exc)) from None


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    settings = _settings(args)
    runner = _ray_runner(args) if hasattr(args, "ray") else None
    if runner is None and (hasattr(args, "gpus_per_sketch") or hasattr(args, "cpus_per_sketch")):
        raise CliError("--gpus-per-sketch and --cpus-per-sketch go with --ray")

    quiet = getattr(args, "quiet", False)
    bar: Any = None

    def on_start(todo: int, skipped: int) -> None:
        nonlocal bar
        if skipped and not quiet:
            print(f"{skipped} photo(s) already sketched with these settings: skipped", file=sys.stderr)
        if todo and not quiet:
            from tqdm import tqdm

            bar = tqdm(total=todo, desc="batch", unit="photo", file=sys.stderr, dynamic_ncols=True)

    def on_image(name: str, entry: dict) -> None:
        if entry["status"] == "failed":
            line = f"clipasso: {name}: failed: {entry['error']}"
            if bar is not None:
                bar.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)
        if bar is not None:
            bar.update(1)

    try:
        report = run_batch(args.inputs, args.outdir, settings, png=getattr(args, "png", False),
                           json_out=getattr(args, "json_out", False), download=not getattr(args, "no_download", False),
                           runner=runner, on_start=on_start, on_image=on_image)
    except KeyboardInterrupt:
        print(f"clipasso: cancelled; finished sketches are kept in {args.outdir}: run the same command to resume",
              file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    print(f"batch: {report.count('ok')} sketched, {report.count('skipped')} skipped, {report.failed} failed; "
          f"report {report.path}", file=sys.stderr)
    if report.random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    return EXIT_FAILED if report.failed else 0


def _ray_runner(args: argparse.Namespace) -> Any:
    """The Ray runner for ``--ray [ADDRESS]`` (Ray is imported only here, and only when asked)."""
    address = args.ray or None
    if address and Path(address).exists():
        raise CliError(f"--ray took {address!r} as the cluster address: put --ray after the photos, or write --ray=ADDRESS")
    gpus, cpus = getattr(args, "gpus_per_sketch", None), getattr(args, "cpus_per_sketch", 1.0)
    if gpus is not None and not 0 <= gpus <= 1:
        raise CliError(f"--gpus-per-sketch must be from 0 to 1 (a share of one GPU), got {gpus:g}")
    if cpus <= 0:
        raise CliError(f"--cpus-per-sketch must be above 0, got {cpus:g}")
    try:
        from .ray_batch import ray_runner
    except ImportError as exc:
        raise CliError(f"--ray needs Ray ({exc}): pip install \"clipasso-inkscape[ray]\"") from None
    return ray_runner(address, gpus_per_sketch=gpus, cpus_per_sketch=cpus)


def cmd_sketch(args: argparse.Namespace) -> int:
    from .api import sketch
    from .image import load_image, photo_size
    from .limits import MAX_STROKES
    from .result import write_all_atomic
    from .svg import svg_to_strokes

    settings = _settings(args)
    image = getattr(args, "image", None) or sample_image()
    output = Path(args.output)
    # a run from --init-svg has one level, whatever the settings say
    planned = _planned_outputs(args, None if getattr(args, "init_svg", None) else settings.stroke_counts)
    _check_writable(*(path for _, path in planned))
    _check_distinct(planned, [("the input photo", image), ("--mask-image", getattr(args, "mask_image", None)),
                              ("--init-svg", getattr(args, "init_svg", None))])

    photo = load_image(image)            # bad images fail here, before any model loads
    init, locked = None, getattr(args, "lock", [])
    if getattr(args, "init_svg", None):
        try:
            strokes, svg_w, svg_h = svg_to_strokes(Path(args.init_svg).read_bytes())
        except OSError as exc:
            raise CliError(f"cannot read --init-svg {args.init_svg}: {exc.strerror}") from None
        if not strokes:
            raise CliError(f"--init-svg {args.init_svg} has no strokes to start from")
        if len(strokes) > MAX_STROKES:
            raise CliError(f"--init-svg {args.init_svg} has {len(strokes)} strokes; a sketch has at most {MAX_STROKES} "
                           "(as in the engine): refine a part of it")
        init = _fit_strokes(strokes, svg_w, svg_h, *photo_size(photo), args.init_svg)
    elif locked:
        raise CliError("--lock needs --init-svg (the strokes to lock)")

    quiet = getattr(args, "quiet", False)
    bar: Any = None          # opened at the first step, so a failed start prints only its error

    def on_progress(it: int, loss: float, _preview: Any) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = _progress_bar(settings.iterations)
        bar.update(it + 1 - bar.n)
        bar.set_postfix_str(f"train loss {loss:.4f}", refresh=False)

    import torch

    try:
        if getattr(args, "engine", None):
            result = _sketch_remote(args.engine, image, settings, on_progress, init, locked, getattr(args, "mask_image", None))
        else:
            result = sketch(photo, settings, on_progress=on_progress, init_strokes=init, locked=locked,
                            mask=getattr(args, "mask_image", None), download=not getattr(args, "no_download", False))
    except torch.cuda.OutOfMemoryError:
        raise CliError("the GPU ran out of memory: lower --seeds, --levels or --augmentations, or use --device cpu") from None
    finally:
        if bar is not None:
            bar.close()

    write_all_atomic(result.output_files(output, json_path=_path_or_none(getattr(args, "json_out", None)),
                                         png=_path_or_none(getattr(args, "png", None))))
    e = result.engine
    print(f"wrote {output}: {len(result.strokes)} strokes, seed {result.seed}, loss {result.loss}, "
          f"{e['iterations']} iterations ({e['stopped']}) in {e['seconds']:.1f} s on {e['device']}", file=sys.stderr)
    if result.random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    return 0


def _sketch_remote(url: str, image: Any, settings: Any, on_progress: Any, init: Any, locked: Any, mask: Any) -> Any:
    """Run the job in the engine at ``url`` (same progress and outputs as in-process); Ctrl-C
    cancels it there too."""
    from .client import EngineClient, EngineError
    from .result import SketchResult

    try:
        client = EngineClient(url)
        job = client.submit(
            Path(image).read_bytes(),
            settings.model_dump(mode="json", exclude_unset=True),   # unset fields: the engine's defaults
            init_strokes=[s.to_json() for s in init] if init else None, locked=locked,
            mask_bytes=Path(mask).read_bytes() if mask else None,
        )

        def progress(status: dict) -> None:
            if status["iteration"]:                  # the engine counts steps done; on_progress gets the step index
                on_progress(status["iteration"] - 1, status["loss"], None)

        try:
            data = client.wait(job, on_progress=progress)
        except KeyboardInterrupt:
            client.cancel(job)
            raise
    except EngineError as exc:
        raise CliError(f"engine {url}: {exc}") from None
    return SketchResult.from_json(data)


def _path_or_none(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None


def _planned_outputs(args: argparse.Namespace, levels: Optional[list[int]]) -> list[tuple[str, Path]]:
    """(option, file) of every file ``sketch`` will write for these stroke counts (None: one
    level), the files of ``SketchResult.output_files``: with several levels, ``--png`` is one
    file per level."""
    from .result import level_png_paths

    planned: list[tuple[str, Path]] = [("-o", Path(args.output))]
    if getattr(args, "json_out", None):
        planned.append(("--json", Path(args.json_out)))
    if getattr(args, "png", None):
        planned += [("--png", path) for path, _ in level_png_paths(Path(args.png), levels or [])]
    return planned


def _check_distinct(planned: list[tuple[str, Path]], inputs: list[tuple[str, Any]]) -> None:
    """Refuse, before any work, an output that is one of the inputs (it would be overwritten) or
    that another output writes too (one would silently replace the other)."""
    for i, (flag, path) in enumerate(planned):
        for name, src in inputs:
            if src is not None and _same_file(path, Path(src)):
                raise CliError(f"{flag} {path} is {name} ({src}): it would be overwritten; choose another output name")
        for other_flag, other in planned[:i]:
            if _same_file(path, other):
                raise CliError(f"{other_flag} and {flag} both name {path}: give each output its own file name")


def _same_file(a: Path, b: Path) -> bool:
    """The same file: the same path once resolved, or (existing files) the same inode, e.g. a hard link."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="sketching", unit="it", file=sys.stderr, dynamic_ncols=True)


def _check_writable(*paths: Optional[str | Path]) -> None:
    """Refuse before any work when an output folder is missing (not after minutes of compute)."""
    for p in paths:
        if p is None:
            continue
        if Path(p).is_dir():
            raise CliError(f"cannot write {p}: it is a folder; give a file name")
        parent = Path(p).resolve().parent
        if not parent.is_dir():
            raise CliError(f"cannot write {p}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise CliError(f"cannot write {p}: folder {parent} is not writable")


def _fit_strokes(strokes: list, svg_w: float, svg_h: float, photo_w: int, photo_h: int, name: str) -> list:
    """Strokes of an SVG drawn over the photo at another size (a 224-px sketch, a sketch of a
    resized copy) scaled into the photo's pixels; a different aspect ratio is refused."""
    sx, sy = photo_w / svg_w, photo_h / svg_h
    if abs(sx / sy - 1.0) > 0.01:
        raise CliError(f"--init-svg {name} is {svg_w:g}×{svg_h:g} but the photo is {photo_w}×{photo_h}: "
                       "their shapes differ, so its strokes cannot be placed on the photo")
    if sx == sy == 1.0:
        return strokes
    return [dataclasses.replace(s, points=tuple((x * sx, y * sy) for x, y in s.points), width=s.width * (sx * sy) ** 0.5)
            for s in strokes]


def _validation_message(exc: Any) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")       # our validators' own messages
        parts.append(f"--{where.replace('_', '-')}: {msg}")
    return "bad settings: " + "; ".join(parts)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.run import serve

    return serve(args.host, args.port, args.device, max_queued=args.max_queue, allow_hosts=args.allow_hosts,
                 allow_model_paths=args.allow_model_paths, checkpoint_seconds=args.checkpoint_seconds,
                 jobs_max_mb=args.jobs_max_mb)


def cmd_models(args: argparse.Namespace) -> int:
    from .clip_weights import available_models, download_clip, weights_folder

    if args.download:
        for name in args.download:
            print(f"{name}: ready at {download_clip(name)}")
        return 0
    rows = available_models()
    for m in rows:
        state = f"present at {m['path']}" if m["present"] else "MISSING"
        print(f"{m['name']:10s} {m['file']:14s} {state}")
    print("Weights are looked for in: " + ", ".join(rows[0]["searched"]))
    missing = [m for m in rows if not m["present"]]
    if missing:
        print(f"To get {' and '.join(m['file'] for m in missing)}, run once with a network connection:")
        print(f"  clipasso models --download {' '.join(m['name'] for m in missing)}")
        print(f"or download {'; '.join(m['url'] for m in missing)} into {weights_folder()}")
    print("Openly licensed alternatives (see docs/models.md): --clip RN101-yfcc15m, or RN50-cc12m.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import platform

    import torch

    from .devices import mps_available
    from .clip_weights import available_models
    from .raster import diffvg_available

    print(f"clipasso-inkscape {__version__}, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    print(f"MPS: {'yes' if mps_available() else 'no'}; CPU threads: {torch.get_num_threads()}")
    print(f"diffvg backend: {'available' if diffvg_available() else 'not installed (optional)'}")
    for m in available_models():
        print(f"CLIP {m['name']}: {'present at ' + str(m['path']) if m['present'] else 'missing (see clipasso models)'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"sketch": cmd_sketch, "batch": cmd_batch, "models": cmd_models, "doctor": cmd_doctor, "serve": cmd_serve}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("clipasso: cancelled; no file written", file=sys.stderr)
        return 130
    except (ClipassoError, OSError) as exc:  # the boundary: what the user can fix becomes one line
        print(f"clipasso: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug: the traceback goes to the log, the user is told where
        print(f"clipasso: internal error ({type(exc).__name__}), see {_log_internal_error()}", file=sys.stderr)
        return EXIT_INTERNAL


def _log_internal_error() -> str:
    """Append the traceback being handled to ``cli.log`` in the config folder; where it went
    (stderr itself when that folder cannot be written)."""
    import time
    import traceback

    from .config_folder import config_dir

    path = Path(config_dir()) / CLI_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} clipasso {' '.join(sys.argv[1:])}\n")
            log.write(traceback.format_exc())
        return str(path)
    except OSError:
        traceback.print_exc()
        return "the traceback above"


if __name__ == "__main__":
    sys.exit(main())
