"""What every CLIPasso menu entry shares: the user's config, reaching (or starting) the
engine, running one job, and turning every failure into a message for the designer.

Runs inside Inkscape's own Python: inkex, lxml and the standard library only. Inkscape shows
anything on stderr in a modal dialog (which hangs headless runs), so nothing here prints: the
one message a run may show is the ``inkex.AbortExtension`` that ends it.
"""

import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Tuple

import inkex

from clipasso_client import (DEFAULT_URL, EngineClient, EngineError, EngineUnavailable, JobFailed, NotAnEngineError,
                             config_dir, read_token)
from clipasso_config_folder import CONFIG_FILE
from clipasso_errors import WeightsError
from clipasso_image import ImageReadError, display_size, read_image_bytes
from clipasso_limits import MAX_SEED

ENGINE_LOG = "engine.log"
EXTENSION_LOG = "extension.log"   # tracebacks of internal errors (stderr would open a dialog)
ENGINE_PID = "engine.pid"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_JOB_TIMEOUT = 3600.0   # seconds a sketch may take before it is cancelled
DEFAULT_START_TIMEOUT = 180.0  # seconds a fresh engine may take to answer (torch import, first load)
HEALTH_TIMEOUT = 10.0          # seconds /v1/health may take: the engine answers it at once, even when busy
REQUEST_TIMEOUT = 30.0         # seconds for the other requests
STOP_TIMEOUT = 20.0            # seconds an engine asked to stop may take to exit (it ends its step, checkpoints)
INSTALL_HINT = "run `python install.py` in the clipasso-inkscape folder"
MODEL_SETTINGS = {"clip": "CLIPASSO_CLIP", "saliency_clip": "CLIPASSO_SALIENCY_CLIP"}   # config.json key → engine env


class Config:
    """The user's settings from ``<config dir>/config.json`` (written by install.py), with
    defaults for whatever is missing.

    ``engine_url``: where the engine listens; ``engine_python``: the interpreter that has
    ``clipasso_engine`` installed (used to start the engine); ``job_timeout``/``start_timeout``:
    seconds; ``clip``/``saliency_clip``: the models an engine started from here uses (a name
    such as ``RN101-yfcc15m``, or a weights file; empty: the engine's defaults). The token is the file ``token`` in the same folder, where the engine writes it
    (or ``$CLIPASSO_TOKEN``).
    """

    def __init__(self, folder: str, values: Dict[str, Any]):
        self.folder = folder
        self.path = os.path.join(folder, CONFIG_FILE)
        self.engine_url = str(values.get("engine_url") or DEFAULT_URL).rstrip("/")
        self.engine_python = str(values.get("engine_python") or "") or None
        self.job_timeout = self._seconds(values, "job_timeout", DEFAULT_JOB_TIMEOUT)
        self.start_timeout = self._seconds(values, "start_timeout", DEFAULT_START_TIMEOUT)
        self.models = {k: str(values[k]).strip() for k in MODEL_SETTINGS if str(values.get(k) or "").strip()}

    def _seconds(self, values: Dict[str, Any], key: str, default: float) -> float:
        """A positive number of seconds from the file, or its default when absent."""
        value = values.get(key) or default
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            seconds = float("nan")
        if not 0 < seconds < float("inf"):
            raise inkex.AbortExtension(
                "The CLIPasso settings file {} has {} = {}; it must be a number of seconds above 0. Fix or delete "
                "it, then {}.".format(self.path, key, json.dumps(value)[:40], INSTALL_HINT)
            )
        return seconds

    @property
    def log_path(self) -> str:
        return os.path.join(self.folder, ENGINE_LOG)

    @classmethod
    def load(cls) -> "Config":
        folder = config_dir()
        path = os.path.join(folder, CONFIG_FILE)
        try:
            with open(path, encoding="utf-8") as handle:
                values = json.load(handle)
        except FileNotFoundError:
            values = {}
        except (OSError, ValueError) as exc:
            raise inkex.AbortExtension(
                "The CLIPasso settings file {} cannot be read ({}). Fix or delete it, then {}.".format(path, exc, INSTALL_HINT)
            )
        return cls(folder, values if isinstance(values, dict) else {})


def is_local(url: str) -> bool:
    """True when the engine URL points at this computer (an engine we may start ourselves)."""
    return (urllib.parse.urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def token_or_blank(config: Config) -> str:
    """The engine's token, or '' before an engine has ever run (it writes the token on first start)."""
    try:
        return read_token(config.folder)
    except EngineError:
        return ""


def answering_client(config: Config, url: str) -> Optional[EngineClient]:
    """A client for the engine at ``url`` if one answers there, else None."""
    client = EngineClient(url, token_or_blank(config), timeout=HEALTH_TIMEOUT)
    try:
        client.health()
    except EngineUnavailable as exc:
        if exc.timed_out:  # a program holds the port: starting an engine there would fail, later and less clearly
            raise inkex.AbortExtension(
                "Something at {} takes connections but sent no answer within {:.0f} s: another program holds that "
                "port, or an engine there hangs. Stop it, or set another engine URL (a free port) in the dialog or "
                "in {}.".format(url, HEALTH_TIMEOUT, config.path)
            )
        return None
    except EngineError as exc:
        if exc.status == 401:
            raise inkex.AbortExtension(
                "The engine at {} does not accept this computer's token ({}). Restart that engine, "
                "or set the engine URL of your own.".format(url, exc)
            )
        detail = str(exc)
        if isinstance(exc, NotAnEngineError):  # the client said it already
            detail = "S" + detail[1:]
        else:
            detail = "Something other than a CLIPasso engine answers at {} ({})".format(url, detail)
        raise inkex.AbortExtension(
            "{}. Set another engine URL (a free port) in the dialog or in {}.".format(detail, config.path)
        )
    client.timeout = REQUEST_TIMEOUT
    return client


def connect(config: Config, url: str, start: bool = True) -> EngineClient:
    """A client for a running engine at ``url``. When none answers and the URL is on this
    computer, starts one in the background (``start``) and waits until it is healthy; the
    engine then stays up for later runs."""
    client = answering_client(config, url)
    if client is not None:
        return client
    if not start or not is_local(url):
        raise inkex.AbortExtension(
            "No CLIPasso engine answers at {}. Start it there with `clipasso serve`, or check the engine URL.".format(url)
        )
    process = start_engine(config, url)
    client = wait_until_healthy(config, url, process)
    note_engine_pid(config, client, process.pid)
    return client


def engine_command(config: Config, url: str) -> List[str]:
    """``<engine python> -m clipasso_engine serve --host H --port P`` for ``url``."""
    python = config.engine_python
    if not python or not os.path.isfile(python):
        raise inkex.AbortExtension(
            "No CLIPasso engine answers at {}, and there is no engine installed to start (engine Python: {}). "
            "To install one, {}.".format(url, python or "not configured", INSTALL_HINT)
        )
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return [python, "-m", "clipasso_engine", "serve", "--host", parts.hostname or "127.0.0.1", "--port", str(port)]


def engine_environment(config: Config) -> Dict[str, str]:
    """Our environment minus what Inkscape sets for its own Python (its module path, its
    PYTHONHOME), which would confuse the engine's interpreter, plus the models ``config.json``
    names (the engine reads its default models from the environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({MODEL_SETTINGS[k]: v for k, v in config.models.items()})
    return env


def detached() -> Dict[str, Any]:
    """Popen options that let the engine outlive this script and Inkscape's job handling:
    its own session (POSIX) or process group without a console (Windows)."""
    if os.name == "nt":
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def start_engine(config: Config, url: str) -> "subprocess.Popen[bytes]":
    """Start ``clipasso serve`` in the background, logging to ``<config dir>/engine.log``.

    docs/inkscape.md §3, gotcha 7: the engine gets no handle of Inkscape's stdio pipes (stdin from
    DEVNULL, output to the log file, ``close_fds``) and a session of its own; Inkscape would
    otherwise wait for it. Its pid goes to ``engine.pid`` so it can be found again. The
    caller holds the returned Popen only while waiting for the engine to answer.
    """
    command = engine_command(config, url)
    os.makedirs(config.folder, exist_ok=True)
    with open(config.log_path, "ab") as log:
        log.write("\n{} starting: {}\n".format(time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(command)).encode("utf-8"))
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
            cwd=config.folder,
            env=engine_environment(config),
            **detached()
        )
    with open(os.path.join(config.folder, ENGINE_PID), "w", encoding="utf-8") as handle:
        json.dump({"pid": process.pid, "url": url, "command": command, "started": time.time()}, handle)
    return process


def note_engine_pid(config: Config, client: EngineClient, started: int) -> None:
    """Put the pid the new engine gives in ``/v1/health`` into ``engine.pid`` when it is not the
    one started (on Windows a virtual environment's python.exe is a launcher that runs the real
    interpreter as its child): Restart the engine stops and waits for that process."""
    try:
        pid = client.health().get("pid")
    except EngineError:
        return
    record = recorded_engine(config)
    if isinstance(pid, int) and pid != started and record.get("pid") == started:
        with open(os.path.join(config.folder, ENGINE_PID), "w", encoding="utf-8") as handle:
            json.dump(dict(record, pid=pid, launcher=started), handle)


def wait_until_healthy(config: Config, url: str, process: "subprocess.Popen[bytes]") -> EngineClient:
    """Poll ``/v1/health`` of the engine just started as ``process`` until it answers; abort,
    pointing at its log, when it exits first or takes longer than ``config.start_timeout``."""
    deadline = time.monotonic() + config.start_timeout
    while time.monotonic() < deadline:
        client = answering_client(config, url) if token_or_blank(config) else None
        if client is not None:
            return client
        if process.poll() is not None:
            raise inkex.AbortExtension(
                "The CLIPasso engine stopped right after starting (exit status {}). Its log {} says why; "
                "`clipasso doctor` checks the installation.".format(process.returncode, config.log_path)
            )
        time.sleep(0.25)
    raise inkex.AbortExtension(
        "The CLIPasso engine did not answer within {:.0f} s at {}. See its log {} for why; "
        "`clipasso doctor` checks the installation.".format(config.start_timeout, url, config.log_path)
    )


def recorded_engine(config: Config, url: Optional[str] = None) -> Dict[str, Any]:
    """What ``engine.pid`` says of the engine last started from here (``pid``, ``url``,
    ``command``, ``started``); empty when there is no such file, it is unreadable, or (given
    ``url``) it names an engine at another address."""
    try:
        with open(os.path.join(config.folder, ENGINE_PID), encoding="utf-8") as handle:
            record = json.load(handle)
        int(record["pid"])
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    if not isinstance(record, dict) or (url is not None and str(record.get("url") or "").rstrip("/") != url):
        return {}
    return record


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs. A zombie counts as gone: its parent (an extension run)
    has exited, and a container's init may never reap it. Sends no signal on Windows, where
    ``os.kill(pid, 0)`` is not a probe (0 is CTRL_C_EVENT, a Ctrl-C to a console group)."""
    if os.name == "nt":
        return _windows_process_alive(pid)
    if os.path.isdir("/proc/self"):     # Linux: the state letter after the command name
        try:
            with open("/proc/{}/stat".format(pid), encoding="ascii", errors="replace") as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except PermissionError:             # someone else's process
        return True
    except OSError:
        return False
    return True


def _windows_process_alive(pid: int) -> bool:
    """Windows: a handle of the process that is not signalled yet (it has not exited)."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x00100000 | 0x1000, False, pid)  # SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5   # access denied: it exists
    try:
        return kernel32.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: still running
    finally:
        kernel32.CloseHandle(handle)


def started_here(config: Config, url: str, health: Dict[str, Any]) -> Optional[int]:
    """The pid of the engine answering at ``url`` (its ``/v1/health`` answer) if the extension
    started it (``engine.pid`` names this URL and that process, which still runs), else None:
    an engine someone started with ``clipasso serve``, or from another config folder."""
    record = recorded_engine(config, url)
    if not record:
        return None
    pid = int(record["pid"])
    # an engine from before /v1/health gave its pid: the file and a running process must do
    if health.get("pid") is not None and health.get("pid") != pid:
        return None
    return pid if process_alive(pid) else None


def other_models(config: Config, health: Dict[str, Any]) -> Dict[str, str]:
    """The models ``config.json`` names that the running engine (its ``/v1/health``) does not use."""
    return {k: v for k, v in config.models.items() if v != health.get(k)}


def restart_engine(config: Config, url: str) -> Tuple[EngineClient, bool]:
    """Stop the engine at ``url`` and start it again the way Sketch from image starts one (with
    the models ``config.json`` names now); a client of the new engine, and whether one was
    stopped (none answering: it is only started). Its unfinished sketches go on: the engine
    checkpoints the running one and keeps the queue on disk.

    Only an engine started from here is restarted; an engine elsewhere, or one someone started
    by hand, ends the run with what to do. Waits at most ``STOP_TIMEOUT`` for the old process
    to exit (a new one must not take over its jobs while it still saves them), then, as
    :func:`connect`, until the new one answers (not for its models: they load with the first
    sketch)."""
    if not is_local(url):
        raise inkex.AbortExtension(
            "The engine at {} is not on this computer, so it cannot be restarted from here. Restart it where it runs "
            "(stop `clipasso serve` there and start it again; CLIPASSO_CLIP and CLIPASSO_SALIENCY_CLIP choose its "
            "models).".format(url)
        )
    client = answering_client(config, url)
    if client is None:
        record = recorded_engine(config, url)  # an engine that stopped listening may still be saving its jobs
        if record:
            wait_for_exit(config, url, int(record["pid"]))
        return connect(config, url), False
    pid = started_here(config, url, client.health())
    if pid is None:
        raise inkex.AbortExtension(
            "The engine at {} was not started by Inkscape on this computer (someone started it with `clipasso serve`, "
            "or it uses another settings folder), so it cannot be restarted from here. Stop it where it was started "
            "and start it again, or choose Stop the engine here: the next sketch then starts one with the models in "
            "{}.".format(url, config.path)
        )
    try:
        client.shutdown()
    except EngineUnavailable:   # it stopped before it answered
        pass
    except EngineError as exc:
        raise inkex.AbortExtension("The engine at {} refused to stop: {}".format(url, exc))
    wait_for_exit(config, url, pid)
    return connect(config, url), True


def wait_for_exit(config: Config, url: str, pid: int) -> None:
    """Wait (at most ``STOP_TIMEOUT``) until the stopping engine process ``pid`` has exited: a new
    engine must not take over its jobs while it still saves them. Ends the run with what to do
    when it takes longer."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while process_alive(pid):
        if time.monotonic() > deadline:
            raise inkex.AbortExtension(
                "The engine at {} is still stopping after {:.0f} s (it saves its running sketch first). Choose Restart "
                "the engine again in a moment; its log {} says what it is doing.".format(url, STOP_TIMEOUT, config.log_path)
            )
        time.sleep(0.1)


def with_configured_models(config: Config, url: str, client: EngineClient) -> EngineClient:
    """The engine at ``url`` restarted with the models ``config.json`` names, when it uses others
    and restarting costs nobody anything: it was started here and has no sketch running, waiting
    or being uploaded. Otherwise ``client`` as it is (Engine status then offers Restart the
    engine)."""
    try:
        health = client.health()
    except EngineError:
        return client
    busy = any(health.get(k) for k in ("running", "queued", "decoding"))
    if not other_models(config, health) or busy or started_here(config, url, health) is None:
        return client
    return restart_engine(config, url)[0]


PREVIEW_LAUNCHER = "preview.html"


def write_preview_launcher(config: Config, client: EngineClient) -> str:
    """A page in the config folder, readable by this user only, that sends the browser on to
    the live preview page with the token in the URL fragment; returns its path.

    The browser is opened on this file rather than on the page's URL because a command's
    arguments are visible to every user of the computer (``ps``), and the token must not be."""
    target = json.dumps(preview_url(client)).replace("<", "\\u003c").replace(">", "\\u003e")
    page = (
        "<!DOCTYPE html>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<title>CLIPasso live preview</title>\n<script>location.replace({});</script>\n"
        "<p>Opening the CLIPasso live preview&hellip;</p>\n".format(target)
    )
    os.makedirs(config.folder, mode=0o700, exist_ok=True)
    path = os.path.join(config.folder, PREVIEW_LAUNCHER)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(handle, 0o600)  # an older file may have had looser permissions
        os.write(handle, page.encode("utf-8"))
    finally:
        os.close(handle)
    return path


def browser_command(path: str) -> List[str]:
    """The command that opens a local file in the default browser (macOS, other POSIX)."""
    return ["open" if sys.platform == "darwin" else "xdg-open", path]


def open_file_in_browser(path: str) -> None:
    """Open a local file in the default browser without tying the browser to Inkscape's pipes
    (``webbrowser`` lets the browser inherit stderr, which Inkscape would wait on). No browser
    opener: nothing happens; the live preview is a convenience, the sketch goes on."""
    if os.name == "nt":
        try:
            os.startfile(path)  # type: ignore[attr-defined]
        except OSError:
            pass
        return
    try:
        subprocess.Popen(
            browser_command(path), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=True, **detached()
        )
    except OSError:
        pass


def show_preview(config: Config, client: EngineClient) -> None:
    """Show the engine's live preview page in the default browser (best effort)."""
    try:
        open_file_in_browser(write_preview_launcher(config, client))
    except OSError:
        pass


def wait_for_result(client: EngineClient, config: Config, job: str) -> Dict[str, Any]:
    """Wait for a submitted job (a sketch that blocks Inkscape) and return its strokes JSON
    (photo pixels).

    A job that fails, is cancelled (from the live preview page) or outlives
    ``config.job_timeout`` (then it is cancelled) ends the run with a message, so the
    document stays as it was.
    """
    try:
        return client.wait(job, timeout=config.job_timeout)
    except EngineUnavailable:
        raise inkex.AbortExtension(
            "The engine stopped while sketching (see its log {}). The document is unchanged.".format(config.log_path)
        )
    except EngineError as exc:
        state = (exc.job or {}).get("state")
        if state == "cancelled":
            raise inkex.AbortExtension("The sketch was cancelled. The document is unchanged.")
        if isinstance(exc, JobFailed):
            raise inkex.AbortExtension(failure_message(exc.kind, str(exc), exc.detail) + " The document is unchanged.")
        if state is not None:  # still queued or running: our time ran out
            cancel_quietly(client, job)
            raise inkex.AbortExtension(
                "The sketch did not finish within {}, so it was cancelled; the document is unchanged. Try the fast "
                "preset or fewer iterations, or raise job_timeout (seconds) in {}.".format(duration(config.job_timeout), config.path)
            )
        raise inkex.AbortExtension("The engine failed while sketching: {}".format(exc))


def submit_job(
    client: EngineClient,
    config: Config,
    image: bytes,
    settings: Dict[str, Any],
    init_strokes: Optional[Sequence[Dict[str, Any]]] = None,
    locked: Sequence[int] = (),
    open_preview: bool = False,
) -> str:
    """Queue one job (and show the live preview when asked); its id."""
    try:
        job = client.submit(image, settings, init_strokes=init_strokes, locked=list(locked))
    except EngineError as exc:
        raise inkex.AbortExtension("The engine refused the job: {}".format(exc))
    if open_preview:
        show_preview(config, client)
    return job


def common_settings(options: Any) -> Dict[str, Any]:
    """What Sketch and Refine both send: the preset (left out for ``auto``: the engine picks
    one for its hardware), the iterations (0: the preset's) and the seed (0: a new random one
    each run, so applying twice gives two different sketches)."""
    settings = {}  # type: Dict[str, Any]
    if options.preset != "auto":
        settings["preset"] = options.preset
    if options.iterations > 0:
        settings["iterations"] = options.iterations
    settings["seed"] = options.seed if options.seed > 0 else random.SystemRandom().randint(1, MAX_SEED)
    return settings


def failure_message(kind: Optional[str], error: str, detail: Dict[str, Any]) -> str:
    """Why a job failed, for the designer: by the engine's error kind (``clipasso_errors``),
    never by its message text. Missing weights get their own words: no flags, no settings."""
    return weights_reason(kind, detail) or "The engine could not make the sketch: {}".format(error)


def weights_reason(kind: Optional[str], detail: Dict[str, Any]) -> Optional[str]:
    """The designer's words for a job that failed for missing model files (its error ``kind``
    and ``detail`` say so), else None."""
    if kind == WeightsError.kind and detail.get("missing"):
        return weights_missing(detail["missing"], str(detail.get("folder") or ""))
    return None


def weights_missing(files: Sequence[str], folder: str) -> str:
    """The designer's words for missing model files: every file, the one folder, or install.py."""
    names = " and ".join(files)
    return ("CLIPasso cannot sketch yet: the model file{} {} {} missing. Put {} in the folder {}, or run install.py "
            "again with a network connection (it downloads them).".format(
                "s" if len(files) > 1 else "", names, "are" if len(files) > 1 else "is",
                "them" if len(files) > 1 else "it", folder or "the engine's weights folder"))


def check_result_size(result: Dict[str, Any], shown: Sequence[int]) -> None:
    """The strokes are in pixels of the picture the engine read: it must be the one shown here
    (``clipasso_image.display_size``), else they would land stretched or turned."""
    got = (int(result["width"]), int(result["height"]))
    if got != tuple(shown):
        raise inkex.AbortExtension(
            "The engine read the photo as {}×{} pixels, but it is shown here as {}×{}, so its strokes would not fit; "
            "nothing was added. Update the engine ({}), or save the photo without its EXIF rotation and import it "
            "again.".format(got[0], got[1], shown[0], shown[1], INSTALL_HINT)
        )


def unexpected(exc: BaseException) -> str:
    """The message for an error nothing else explained (an internal error: what, where its
    traceback went, the document is safe). The traceback goes to ``extension.log`` in the config
    folder, never to stderr (docs/inkscape.md §3.1)."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    where = log_traceback()
    return ("CLIPasso hit an internal error ({}{}). Nothing was changed. {}".format(
        type(exc).__name__, ": " + detail if detail else "",
        "The details are in {}.".format(where) if where else "If it keeps happening, `clipasso doctor` checks the installation."))


def log_traceback() -> Optional[str]:
    """Append the traceback being handled to ``extension.log`` in the config folder; its path,
    or None when that folder cannot be written."""
    import traceback

    path = os.path.join(config_dir(), EXTENSION_LOG)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write("--- {} {}\n{}".format(time.strftime("%Y-%m-%d %H:%M:%S"), os.path.basename(sys.argv[0]),
                                             traceback.format_exc()))
        return path
    except OSError:
        return None


def duration(seconds: float) -> str:
    """``"45 s"`` or ``"60 minutes"``."""
    return "{:.0f} s".format(seconds) if seconds < 120 else "{:.0f} minutes".format(seconds / 60)


def add_engine_arguments(pars: Any, preset_default: str, presets: Sequence[str]) -> None:
    """The parameters Sketch and Refine share (see :func:`common_settings`)."""
    pars.add_argument("--preset", default=preset_default, choices=presets, help="auto, fast, standard or paper")
    pars.add_argument("--iterations", type=int, default=0, help="optimization steps; 0 = the preset's")
    pars.add_argument("--seed", type=int, default=0, help="random seed; 0 = a new one each run")
    pars.add_argument("--background", type=inkex.Boolean, default=True, help="keep working while it sketches")
    pars.add_argument("--open_preview", type=inkex.Boolean, default=True, help="open the live preview page")


def cancel_quietly(client: EngineClient, job: str) -> None:
    """Best effort: an engine that cannot be told to stop will finish the job unread."""
    try:
        client.cancel(job)
    except EngineError:
        pass


def preview_url(client: EngineClient) -> str:
    """The engine's live preview page; it follows the running job and reads the token from
    the URL fragment (which never travels to the server or into the history)."""
    return "{}/#token={}".format(client.url, urllib.parse.quote(client.token))


class EngineExtension(inkex.EffectExtension):
    """Base of the menu entries that talk to the engine: the engine URL parameter, and one
    message instead of a traceback for whatever a document, a file or an engine throws at us."""

    def effect(self):
        raise NotImplementedError

    def load_raw(self):
        # wrap the subclass's effect once the run starts: an unexpected error (a strange document,
        # file or engine answer) ends the run with one message, never a traceback, before anything
        # is saved, so the document stays as it was
        effect = self.effect

        def guarded():
            try:
                return effect()
            except (inkex.AbortExtension, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - the boundary: one message for the designer
                raise inkex.AbortExtension(unexpected(exc))

        self.effect = guarded
        super().load_raw()

    def add_arguments(self, pars):
        pars.add_argument("--engine_url", default="", help="engine URL; empty: the one install.py configured")

    def read_photo(self, image: inkex.Image) -> Tuple[bytes, Tuple[int, int]]:
        """The photo's file bytes and its size in the engine's pixels (the upright picture); an
        unreadable photo ends the run with what is wrong."""
        try:
            data, _ = read_image_bytes(image, self.options.input_file)
            return data, display_size(data)
        except ImageReadError as exc:
            raise inkex.AbortExtension(str(exc))

    def engine_url(self, config: Config) -> str:
        return (self.options.engine_url or "").strip().rstrip("/") or config.engine_url
