#!/usr/bin/env python3
"""Set up clipasso-inkscape with one command: the engine, the Inkscape extension, the config.

    python3 install.py                    # engine in its own venv, extension into Inkscape
    python3 install.py --python .venv/bin/python   # use an environment that has (or gets) the engine
    python3 install.py --no-engine        # extension files and config only
    python3 install.py --dry-run          # say what would be done
    python3 install.py --uninstall        # remove exactly what earlier runs added

Standard library only, so it runs with any Python 3.8+ (the engine's venv needs 3.10+). Running
it again updates everything in place. Every file and folder it creates is listed in
``<config dir>/install-manifest.json``; ``--uninstall`` removes those and nothing else.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parent
ENGINE_DIR = REPO / "clipasso_engine"
# Engine modules the extension uses as they are (standard library only), and the names their
# copies take beside it: the client, last, imports the others under these names there.
SHARED = {"errors.py": "clipasso_errors.py", "config_folder.py": "clipasso_config_folder.py",
          "limits.py": "clipasso_limits.py", "client.py": "clipasso_client.py"}
EXTENSION_SUBDIR = "clipasso"          # inside Inkscape's user extensions folder (Inkscape looks in subfolders)
MANIFEST = "install-manifest.json"
CONFIG = "config.json"
ENGINE_MIN_PYTHON = (3, 10)


def load_client() -> Any:
    """The engine's standalone client module, loaded from its file (it needs no dependencies):
    the one place that knows the config folder and the default engine URL."""
    module = None
    for source, copy in SHARED.items():    # in order: the client imports the others
        name = copy[: -len(".py")]
        spec = importlib.util.spec_from_file_location(name, str(ENGINE_DIR / source))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def data_dir() -> Path:
    """Where the engine's venv goes: the user data folder of "clipasso"."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "clipasso"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "clipasso"
    xdg = os.environ.get("XDG_DATA_HOME", "")
    return (Path(xdg) if xdg.startswith("/") else Path.home() / ".local" / "share") / "clipasso"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def find_inkscape() -> Optional[str]:
    """The inkscape program: on PATH, else where the official installers put it."""
    found = shutil.which("inkscape")
    if found:
        return found
    candidates = {
        "darwin": ["/Applications/Inkscape.app/Contents/MacOS/inkscape"],
        "win32": [os.path.join(os.environ.get(v, ""), "Inkscape", "bin", "inkscape.exe") for v in ("ProgramFiles", "ProgramFiles(x86)")],
    }.get(sys.platform, [])
    return next((c for c in candidates if os.path.isfile(c)), None)


def ask_inkscape(inkscape: Optional[str], option: str, profile: Optional[Path] = None) -> Optional[Path]:
    """A folder Inkscape reports (``--user-data-directory``, ``--system-data-directory``).
    With ``profile``, Inkscape runs with that user folder (it creates its files there)."""
    if not inkscape:
        return None
    env = dict(os.environ, INKSCAPE_PROFILE_DIR=str(profile)) if profile else None
    try:
        out = subprocess.run([inkscape, option], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return Path(lines[-1]) if out.returncode == 0 and lines else None


def default_profile_dir() -> Path:
    """Inkscape's user folder when Inkscape cannot be asked: $INKSCAPE_PROFILE_DIR, else the platform default."""
    if os.environ.get("INKSCAPE_PROFILE_DIR"):
        return Path(os.environ["INKSCAPE_PROFILE_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "inkscape"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "org.inkscape.Inkscape" / "config" / "inkscape"
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return (Path(xdg) if xdg.startswith("/") else Path.home() / ".config") / "inkscape"


def inkscape_python(inkscape: Optional[str]) -> Optional[str]:
    """The Python Inkscape runs extensions with: it puts its own program folder first on PATH,
    so a python beside it (Windows and macOS bundles, /usr/bin on Linux), else ``python3``."""
    if inkscape:
        real = Path(inkscape).resolve()
        for candidate in (real.parent / "python.exe", real.parent / "python3", real.parent.parent / "Resources" / "bin" / "python3"):
            if candidate.is_file():
                return str(candidate)
    return shutil.which("python3") or shutil.which("python")


class Installer:
    """Performs (or, with ``dry_run``, only reports) each step and remembers what it created."""

    def __init__(self, config_dir: Path, dry_run: bool):
        self.config_dir = config_dir
        self.dry_run = dry_run
        self.manifest_path = config_dir / MANIFEST
        old: Dict[str, Any] = {}
        if self.manifest_path.is_file():
            old = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        # files and folders this installer created; trees are removed whole (the venv)
        self.owned: Dict[str, List[str]] = {key: list(old.get(key, [])) for key in ("files", "dirs", "trees")}

    def say(self, text: str) -> None:
        print(("would " if self.dry_run else "") + text)

    def own(self, kind: str, path: Path) -> None:
        if str(path) not in self.owned[kind]:
            self.owned[kind].append(str(path))

    def make_dir(self, path: Path) -> None:
        """Create ``path`` and any missing parents, owning the ones created."""
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for folder in reversed(missing):
            self.say("create {}".format(folder))
            if not self.dry_run:
                folder.mkdir()
            self.own("dirs", folder)

    def write(self, path: Path, data: bytes, what: str) -> None:
        """Write a file; a file that was there before this installer wrote it is not owned."""
        if not path.exists():
            self.own("files", path)
        self.say("write {} {}".format(what, path))
        if not self.dry_run:
            path.write_bytes(data)

    def run(self, command: List[str], what: str) -> None:
        self.say("{}: {}".format(what, " ".join(command)))
        if not self.dry_run:
            subprocess.run(command, check=True)

    def save_manifest(self) -> None:
        if not self.dry_run:
            self.make_dir(self.config_dir)
            self.manifest_path.write_text(json.dumps(self.owned, indent=2) + "\n", encoding="utf-8")

    def remove_files(self) -> None:
        """Delete every owned file and every owned tree (the engine's venv)."""
        for name in self.owned["trees"]:
            if Path(name).is_dir():
                self.say("remove the engine environment {}".format(name))
                if not self.dry_run:
                    shutil.rmtree(name)
        for name in self.owned["files"]:
            if Path(name).exists():
                self.say("remove {}".format(name))
                if not self.dry_run:
                    Path(name).unlink()

    def remove_dirs(self) -> None:
        """Delete the owned folders, deepest first, that nothing else has filled since."""
        for name in sorted(self.owned["dirs"], key=len, reverse=True):
            path = Path(name)
            if path.is_dir() and (self.dry_run or not any(path.iterdir())):
                self.say("remove {} (if empty)".format(path) if self.dry_run else "remove {}".format(path))
                if not self.dry_run:
                    path.rmdir()


CLIP_WEIGHTS = ("RN101", "ViT-B-32")   # the loss model and the saliency model
CLIP_WEIGHT_FILES = tuple(name + ".pt" for name in CLIP_WEIGHTS)


def engine_importable(python: str) -> bool:
    """Whether ``python`` has the engine installed (not merely this checkout beside it)."""
    probe = "import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; import clipasso_engine"
    return subprocess.run([python, "-c", probe], capture_output=True, timeout=300, cwd=str(REPO)).returncode == 0


def set_up_engine(args: argparse.Namespace, inst: Installer) -> Optional[str]:
    """The Python that runs the engine, after making sure it has ``clipasso_engine``."""
    if args.python:
        python = str(Path(args.python).expanduser().absolute())
        if not Path(python).is_file():
            sys.exit("install.py: --python {} does not exist".format(args.python))
        if engine_importable(python):
            print("engine: already installed in {}".format(python))
        else:
            pip_install_engine(inst, python, args, [], "install the engine into {}".format(python))
        return python
    if sys.version_info < ENGINE_MIN_PYTHON:
        sys.exit(
            "install.py: the engine needs Python {}.{}+; run install.py with a newer python3, or pass "
            "--python PATH (an environment for the engine) or --no-engine".format(*ENGINE_MIN_PYTHON)
        )
    venv = Path(args.venv).expanduser().absolute() if args.venv else data_dir() / "venv"
    python = venv_python(venv)
    if not python.is_file():
        # --uninstall removes the venv folder whole: only one this installer made (absent or empty
        # before), never a folder of the user's that merely got a venv put into it
        fresh = not venv.exists() or (venv.is_dir() and not any(venv.iterdir()))
        inst.make_dir(venv.parent)
        inst.run([sys.executable, "-m", "venv", str(venv)], "create the engine environment")
        if fresh:
            inst.own("trees", venv)
    pip_install_engine(inst, str(python), args, ["--upgrade"], "install the engine (torch and all)")
    return str(python)


def pip_install_engine(inst: Installer, python: str, args: argparse.Namespace, flags: List[str], what: str) -> None:
    """pip-install the engine into ``python`` (with pip ``flags``), torch first from
    ``--torch-index`` when given (e.g. PyTorch's CPU-only builds: a few hundred MB instead of
    several GB)."""
    if getattr(args, "torch_index", None):
        inst.run([python, "-m", "pip", "install", *flags, "torch", "torchvision", "--index-url", args.torch_index],
                 "install torch from {}".format(args.torch_index))
    inst.run([python, "-m", "pip", "install", *flags, str(REPO)], what)


def fetch_weights(python: str, inst: Installer) -> Optional[str]:
    """Download OpenAI's CLIP weights the engine needs (once, into its weights folder,
    ~/.cache/clip by default, which --uninstall leaves alone). Offline this fails within
    seconds; the install goes on and the engine names the missing files on first use. Returns
    what went wrong (every missing file and the folder to put them in), or None."""
    try:
        inst.run([python, "-m", "clipasso_engine", "models", "--download", *CLIP_WEIGHTS],
                 "download the CLIP weights {}".format(" and ".join(CLIP_WEIGHT_FILES)))
        return None
    except subprocess.CalledProcessError:
        pass
    probe = "from clipasso_engine.clip_weights import available_models, weights_folder as f; " \
            "print(f()); print(' '.join(m['file'] for m in available_models() if not m['present']))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300)
    lines = out.stdout.splitlines() if out.returncode == 0 else []
    folder = lines[0] if lines else "~/.cache/clip"
    missing = (lines[1].split() if len(lines) > 1 else []) or list(CLIP_WEIGHT_FILES)
    return ("could not download {} (no network?). Put {} in {}, or run install.py again with a network "
            "connection.".format(" and ".join(missing), "them" if len(missing) > 1 else "it", folder))


def profile_dir(args: argparse.Namespace, inkscape: Optional[str]) -> Path:
    """Inkscape's user folder: ``--inkscape-profile``, else as Inkscape reports it, else the default."""
    if args.inkscape_profile:
        return Path(args.inkscape_profile).expanduser().absolute()
    return ask_inkscape(inkscape, "--user-data-directory") or default_profile_dir()


def copy_extension(target: Path, inst: Installer) -> List[str]:
    """Copy the extension scripts, the .inx menus and the shared engine modules (``SHARED``) into ``target``;
    files an earlier version installed there and this one no longer has are removed."""
    inst.make_dir(target)
    sources = sorted((REPO / "extension").glob("*.py")) + sorted((REPO / "inx").glob("*.inx"))
    installed = []
    for source in sources:
        inst.write(target / source.name, source.read_bytes(), "extension file")
        installed.append(str(target / source.name))
    for source, name in sorted(SHARED.items()):
        inst.write(target / name, (ENGINE_DIR / source).read_bytes(), "engine module")
        installed.append(str(target / name))
    stale = [f for f in inst.owned["files"] if Path(f).parent == target and f not in installed]
    for name in stale:
        inst.say("remove the outdated {}".format(name))
        if not inst.dry_run and Path(name).exists():
            Path(name).unlink()
        inst.owned["files"].remove(name)
    return installed


def write_config(args: argparse.Namespace, client: Any, engine_python: Optional[str], inst: Installer) -> Path:
    """``config.json``: engine URL, engine Python. Values the user set before are kept unless
    given again on the command line. (The token needs no entry: the engine keeps it in this same
    folder, where the extension reads it.)"""
    folder = inst.config_dir
    path = folder / CONFIG
    config: Dict[str, Any] = {}
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            config = {}
    config["engine_url"] = args.engine_url or config.get("engine_url") or client.DEFAULT_URL
    if engine_python or "engine_python" not in config:
        config["engine_python"] = engine_python
    config.pop("token_path", None)           # written by earlier versions; never read
    inst.make_dir(folder)
    inst.write(path, (json.dumps(config, indent=2) + "\n").encode("utf-8"), "config")
    return path


def check_inkscape_python(inkscape: Optional[str], target: Path, system_extensions: Optional[Path], dry_run: bool) -> Optional[str]:
    """Import the installed extension the way Inkscape will; returns a problem or None."""
    if dry_run or not inkscape:
        return None
    python = inkscape_python(inkscape)
    if not python:
        return "found no Python for Inkscape's extensions (python3): install it, or Inkscape's full package"
    env = dict(os.environ)
    if system_extensions:
        env["PYTHONPATH"] = str(system_extensions)  # where Inkscape's own inkex lives
    probe = (
        "import warnings, inkex; warnings.simplefilter('ignore'); "
        "import clipasso_sketch, clipasso_refine, clipasso_status, clipasso_insert; print(inkex.__version__)"
    )
    try:
        out = subprocess.run([python, "-c", probe], cwd=str(target), env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return "could not run {}: {}".format(python, exc)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        return "{} (the Python Inkscape runs extensions with) cannot load the extension: {}".format(python, last)
    print("checked: Inkscape's Python {} loads the extension (inkex {})".format(python, out.stdout.strip()))
    return None


def install(args: argparse.Namespace) -> int:
    client = load_client()
    inst = Installer(Path(client.config_dir()), args.dry_run)
    inkscape = find_inkscape()
    engine_python = None if args.no_engine else set_up_engine(args, inst)
    weights_problem = None if (engine_python is None or args.no_weights) else fetch_weights(engine_python, inst)
    profile = profile_dir(args, inkscape)
    target = profile / "extensions" / EXTENSION_SUBDIR
    copy_extension(target, inst)
    config_path = write_config(args, client, engine_python, inst)
    inst.save_manifest()
    system = ask_inkscape(inkscape, "--system-data-directory", profile if args.inkscape_profile else None)
    problem = check_inkscape_python(inkscape, target, system / "extensions" if system else None, args.dry_run)

    print()
    print("Extension: {}".format(target))
    print("Config:    {} (engine log: {})".format(config_path, inst.config_dir / "engine.log"))
    print("Engine:    {}".format(engine_python or "not installed here (--no-engine): start `clipasso serve` yourself"))
    if weights_problem:
        print("CLIP weights: {}".format(weights_problem))
    if not inkscape:
        print("Inkscape was not found; install it (1.2 or newer) and the menu will be there.")
    print(
        "\nRestart Inkscape, select an imported photo and choose Extensions > CLIPasso > Sketch from image...\n"
        "The engine starts by itself on first use (a minute or two); the sketch appears as a new layer above the photo.\n"
        "Undo with: python3 install.py --uninstall"
    )
    if problem:
        print("\nPROBLEM: {}".format(problem), file=sys.stderr)
        return 1
    return 0


def uninstall(args: argparse.Namespace) -> int:
    inst = Installer(Path(load_client().config_dir()), args.dry_run)
    if not inst.manifest_path.is_file():
        print("Nothing to remove: no {} (install.py has not installed anything here).".format(inst.manifest_path))
        return 0
    inst.remove_files()
    inst.say("remove {}".format(inst.manifest_path))
    if not args.dry_run:
        inst.manifest_path.unlink()
    inst.remove_dirs()
    print("Removed what install.py had added. The engine's token and log (if any) stay in {}.".format(inst.config_dir))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Install the CLIPasso engine and its Inkscape extension.")
    parser.add_argument("--python", metavar="PATH", help="run the engine with this existing Python (installs the engine there if it lacks it)")
    parser.add_argument("--venv", metavar="DIR", help="where to create the engine's venv (default: the clipasso data folder)")
    parser.add_argument("--no-engine", action="store_true", help="install only the extension files and the config")
    parser.add_argument("--inkscape-profile", metavar="DIR", help="Inkscape user folder to install into (DIR/extensions), as INKSCAPE_PROFILE_DIR")
    parser.add_argument("--engine-url", metavar="URL", help="engine URL to configure (default http://127.0.0.1:8765)")
    parser.add_argument("--no-weights", action="store_true", help="do not download the CLIP weights (RN101.pt, ViT-B-32.pt) now")
    parser.add_argument("--torch-index", metavar="URL",
                        help="install torch from this package index first, e.g. https://download.pytorch.org/whl/cpu "
                             "for the CPU-only build (a few hundred MB instead of several GB)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    parser.add_argument("--uninstall", action="store_true", help="remove everything earlier runs installed")
    args = parser.parse_args(argv)
    try:
        return uninstall(args) if args.uninstall else install(args)
    except subprocess.CalledProcessError as exc:
        print("install.py: {} failed (exit status {})".format(" ".join(map(str, exc.cmd)), exc.returncode), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
