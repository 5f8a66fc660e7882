"""``clipasso_engine/client.py`` on its own: the file the Inkscape extension copies.

It must import nothing but the standard library, parse as Python 3.8, find the same config
folder as the engine (platformdirs) on every platform, and fail with clear errors.
"""

from __future__ import annotations

import ast
import http.server
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import platformdirs
import pytest
from platformdirs.macos import MacOS
import platformdirs.windows
from platformdirs.windows import Windows

from clipasso_engine import client
from clipasso_engine.server.auth import config_dir as engine_config_dir
from extension_support import SHARED

CLIENT = Path(client.__file__)
REPO = CLIENT.parents[1]


@pytest.mark.parametrize("source", sorted(SHARED))
def test_shared_modules_import_only_the_standard_library_and_each_other(source):
    tree = ast.parse((CLIENT.parent / source).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # in the package: only its fellow shared modules
                assert f"{node.module}.py" in SHARED, node.module
            else:
                imported.add(node.module.split(".")[0])
    copies = {name[: -len(".py")] for name in SHARED.values()}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names) | copies, imported


# every file that runs in Inkscape's Python (3.8 on some systems) or in install.py's
PY38_FILES = [*(CLIENT.parent / s for s in sorted(SHARED)), *sorted((REPO / "extension").glob("*.py")), REPO / "install.py"]
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def newer_typing(source: str) -> list[str]:
    """Typing that Python 3.8 cannot evaluate: ``list[int]`` (PEP 585) anywhere at run time,
    ``X | Y`` (PEP 604) in annotations too, unless ``from __future__ import annotations``
    leaves annotations unevaluated."""
    tree = ast.parse(source, feature_version=(3, 8))
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
                    for n in tree.body)
    annotations = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            annotations += [a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                            if a is not None and a.annotation is not None]
            annotations += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
    in_annotation = {id(n) for a in annotations for n in ast.walk(a)}
    found = []
    for node in ast.walk(tree):
        if postponed and id(node) in in_annotation:
            continue
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in BUILTIN_GENERICS:
            found.append(f"line {node.lineno}: {node.value.id}[...]")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) in in_annotation:
            found.append(f"line {node.lineno}: X | Y")
    return found


@pytest.mark.parametrize("path", PY38_FILES, ids=lambda p: p.name)
def test_parses_as_python_3_8(path):
    ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 8))
    assert newer_typing(path.read_text(encoding="utf-8")) == []


def test_newer_typing_is_found():
    assert set(newer_typing("def f(x: list[int]) -> int | None: pass")) == {"line 1: list[...]", "line 1: X | Y"}
    assert newer_typing("from __future__ import annotations\ndef f(x: list[int]) -> int | None: pass") == []
    assert newer_typing("from __future__ import annotations\nStrokes = dict[str, int]\ny: tuple[int] = ()") == ["line 2: dict[...]"]
    assert newer_typing("flags = 1 | 2\nfrom typing import List\nx: List[int] = []") == []


def test_standalone_copy_imports_in_an_isolated_python(tmp_path):
    for source, name in SHARED.items():      # as install.py lays them out beside the extension
        (tmp_path / name).write_bytes((CLIENT.parent / source).read_bytes())
    script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import clipasso_client as m, clipasso_errors as e\n"
        "print(m.EngineClient, m.EngineError, m.EngineUnavailable, m.read_token, m.config_dir)\n"
        "assert issubclass(m.NotAnEngineError, e.NotAnEngine) and issubclass(m.JobFailed, e.ClipassoError)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] not in {*sys.stdlib_module_names, '__main__'}))\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(sorted(n[: -len(".py")] for n in SHARED.values()))


@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-config", "relative/ignored"])
def test_config_dir_matches_platformdirs_here(monkeypatch, xdg):
    monkeypatch.delenv("CLIPASSO_CONFIG_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert client.config_dir() == platformdirs.user_config_dir("clipasso") == str(engine_config_dir())


@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-config"])
def test_config_dir_matches_platformdirs_on_macos(monkeypatch, xdg):
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert client.platform_config_dir("darwin") == MacOS("clipasso").user_config_dir


def test_config_dir_matches_platformdirs_on_windows(monkeypatch):
    monkeypatch.setenv("LOCALAPPDATA", r"C:\Users\ada\AppData\Local")
    # off Windows, platformdirs' folder lookup has no Windows API: let it read the variables
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", platformdirs.windows.get_win_folder_from_env_vars)
    assert client.platform_config_dir("win32") == Windows("clipasso").user_config_dir


def test_config_dir_override_and_token(monkeypatch, tmp_path):
    monkeypatch.delenv("CLIPASSO_TOKEN", raising=False)
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(tmp_path))
    assert client.config_dir() == str(tmp_path) == str(engine_config_dir())
    with pytest.raises(client.EngineError, match="clipasso serve"):
        client.read_token()
    (tmp_path / "token").write_text("secret-token\n")
    (tmp_path / "token").chmod(0o600)
    assert client.read_token() == "secret-token"
    monkeypatch.setenv("CLIPASSO_TOKEN", "remote-token")
    assert client.read_token() == "remote-token"


def test_nothing_listening_is_engine_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = client.EngineClient(f"http://127.0.0.1:{port}", token="t", timeout=5)
    with pytest.raises(client.EngineUnavailable, match="clipasso serve"):
        engine.health()


# --- something else answers at the engine URL ---------------------------------------------------------

class Answers(http.server.BaseHTTPRequestHandler):
    """A stand-in server; ``reply`` (set per test) writes the answer to every request."""

    reply: Callable[["Answers"], None]
    seen: list

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.reply(self)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def stand_in(reply: Callable[[Answers], None]) -> Iterator[tuple[str, list]]:
    """``http://127.0.0.1:PORT`` of a loopback server answering with ``reply``; the list of
    (path, Authorization) it received."""
    seen: list = []
    handler = type("Handler", (Answers,), {"reply": staticmethod(reply), "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def answer(status: int, body: bytes, content_type: str = "text/html", length: Optional[int] = None, **headers: str):
    def reply(h: Answers) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
    return reply


def test_a_web_page_at_the_engine_url_is_named_as_such():
    with stand_in(answer(200, b"<!DOCTYPE html><title>Another app</title>")) as (url, _):
        with pytest.raises(client.EngineError, match=f"something other than a CLIPasso engine answers at {url}") as err:
            client.EngineClient(url, token="t", timeout=5).health()
    assert not isinstance(err.value, client.EngineUnavailable)
    with stand_in(answer(200, b"[1, 2]", "application/json")) as (url, _):     # JSON, but not the engine's
        with pytest.raises(client.EngineError, match="something other than a CLIPasso engine"):
            client.EngineClient(url, token="t", timeout=5).health()


def test_a_server_that_does_not_speak_http_is_named_as_such():
    def ssh(h: Answers) -> None:
        h.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        h.close_connection = True
    with stand_in(ssh) as (url, _):
        with pytest.raises(client.EngineError, match="something other than a CLIPasso engine answers"):
            client.EngineClient(url, token="t", timeout=5).health()


def test_redirects_are_refused_and_the_token_stays():
    def reply(h: Answers) -> None:
        if h.path == "/v1/health":
            answer(302, b"", Location="/elsewhere/health")(h)
        else:
            answer(200, b'{"status": "ok"}', "application/json")(h)
    with stand_in(reply) as (url, seen):
        with pytest.raises(client.EngineError, match="redirects to .*/elsewhere/health") as err:
            client.EngineClient(url, token="secret-token", timeout=5).health()
    assert err.value.status == 302
    assert [path for path, _ in seen] == ["/v1/health"]          # never followed: no token went elsewhere


def test_an_answer_that_breaks_off_is_engine_unavailable():
    release = threading.Event()

    def stall(h: Answers) -> None:                # headers, then nothing within the client's timeout
        answer(200, b'{"sta', "application/json", length=100)(h)
        release.wait(10)

    def reset(h: Answers) -> None:                # half an answer, then the connection closes
        answer(200, b'{"sta', "application/json", length=100)(h)
        h.close_connection = True
    try:
        with stand_in(stall) as (url, _):
            with pytest.raises(client.EngineUnavailable, match=f"the engine at {url} stopped answering"):
                client.EngineClient(url, token="t", timeout=0.5).health()
    finally:
        release.set()
    with stand_in(reset) as (url, _):
        with pytest.raises(client.EngineUnavailable, match="stopped answering"):
            client.EngineClient(url, token="t", timeout=5).status("job")


def test_an_event_stream_that_ends_early_is_engine_unavailable():
    running = b'event: status\ndata: {"state": "running", "iteration": 1}\n\n'
    with stand_in(answer(200, running, "text/event-stream")) as (url, _):
        events = client.EngineClient(url, token="t", timeout=5).events("job")
        assert next(events)["state"] == "running"
        with pytest.raises(client.EngineUnavailable, match="ended the event stream"):
            next(events)
