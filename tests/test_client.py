"""``clipasso_engine/client.py`` on its own: the file the Inkscape extension copies.

It must import nothing but the standard library, parse as Python 3.8, find the same config
folder as the engine (platformdirs) on every platform, and fail with clear errors.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest
from platformdirs.macos import MacOS
import platformdirs.windows
from platformdirs.windows import Windows

from clipasso_engine import client
from clipasso_engine.server.auth import config_dir as engine_config_dir

CLIENT = Path(client.__file__)


def test_imports_only_the_standard_library():
    tree = ast.parse(CLIENT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the file is copied out of the package"
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


def test_parses_as_python_3_8():
    ast.parse(CLIENT.read_text(encoding="utf-8"), feature_version=(3, 8))


def test_standalone_copy_imports_in_an_isolated_python(tmp_path):
    copy = tmp_path / "clipasso_client.py"
    copy.write_bytes(CLIENT.read_bytes())
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('clipasso_client', {str(copy)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.EngineClient, m.EngineError, m.EngineUnavailable, m.read_token, m.config_dir)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] not in {*sys.stdlib_module_names, '__main__'}))\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


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
