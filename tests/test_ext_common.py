"""``clipasso_common`` without Inkscape or an engine: where the token comes from, how the
live preview is opened without the token ever appearing in a command line, and which engine
Restart the engine may stop."""

from __future__ import annotations

import importlib
import os
import subprocess
from types import SimpleNamespace

import pytest

from engine_support import wait_for
from extension_support import import_extension_modules, use_engine_modules_as_copies

import_extension_modules()

TOKEN = "tok-" + "x" * 40


@pytest.fixture
def common(monkeypatch, tmp_path):
    """The module as installed: its ``clipasso_client`` is the engine's client.py."""
    use_engine_modules_as_copies(monkeypatch)
    monkeypatch.delenv("CLIPASSO_TOKEN", raising=False)
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(tmp_path / "config"))
    return importlib.import_module("clipasso_common")


def engine_client(url: str = "http://127.0.0.1:8765"):
    return SimpleNamespace(url=url, token=TOKEN)


def test_token_is_read_from_the_config_folder_only(common, tmp_path, monkeypatch):
    """config.json's old ``token_path`` (written by earlier installs) names no other place."""
    folder = tmp_path / "config"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "token").write_text("not-this-one\n")
    config = common.Config(str(folder), {"token_path": str(tmp_path / "elsewhere" / "token")})
    assert common.token_or_blank(config) == ""                  # no engine has run yet
    (folder / "token").write_text(TOKEN + "\n")
    (folder / "token").chmod(0o600)
    assert common.token_or_blank(config) == TOKEN
    monkeypatch.setenv("CLIPASSO_TOKEN", "remote-token")
    assert common.token_or_blank(config) == "remote-token"


def test_preview_launcher_is_private_and_forwards_with_the_token(common, tmp_path):
    config = common.Config.load()
    path = common.write_preview_launcher(config, engine_client())
    assert os.path.dirname(path) == config.folder
    text = open(path, encoding="utf-8").read()
    assert 'location.replace("http://127.0.0.1:8765/#token=' + TOKEN + '")' in text
    if os.name == "posix":
        assert os.stat(path).st_mode & 0o777 == 0o600
        os.chmod(path, 0o644)                                     # loosened: tightened on the next write
        common.write_preview_launcher(config, engine_client())
        assert os.stat(path).st_mode & 0o777 == 0o600
    # a URL that could end the script stays inside its string
    hostile = common.write_preview_launcher(config, engine_client("http://127.0.0.1:1/</script><script>alert(1)//"))
    assert "</script><script>" not in open(hostile, encoding="utf-8").read()


def test_browser_is_opened_on_the_file_not_on_the_token(common, monkeypatch):
    started = []

    class FakePopen:
        def __init__(self, args, **kwargs):
            started.append(args)

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    config = common.Config.load()
    common.show_preview(config, engine_client())
    (args,) = started
    assert args == common.browser_command(os.path.join(config.folder, common.PREVIEW_LAUNCHER))
    assert not any(TOKEN in str(a) for a in args)


def test_no_browser_is_no_error(common, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("xdg-open")

    monkeypatch.setattr(subprocess, "Popen", missing)
    common.show_preview(common.Config.load(), engine_client())
    # Windows: os.startfile fails without an application for .html files
    monkeypatch.setattr(os, "name", "nt")
    monkeypatch.setattr(os, "startfile", lambda path: (_ for _ in ()).throw(OSError("no association")), raising=False)
    common.open_file_in_browser("preview.html")


def test_strokes_of_another_picture_size_are_refused(common):
    import inkex

    common.check_result_size({"width": 48, "height": 64}, (48, 64))
    with pytest.raises(inkex.AbortExtension, match="read the photo as 64×48 pixels, but it is shown here as 48×64"):
        common.check_result_size({"width": 64, "height": 48}, (48, 64))


def test_an_unexpected_error_ends_the_run_with_one_message(common, tmp_path, capsys):
    """Whatever a strange document or engine answer breaks inside an effect ends the run as
    inkex's abort (exit 251, one line on stderr), never a traceback, and nothing is written."""
    class Breaks(common.EngineExtension):
        def effect(self):
            return 1 / 0

    doc = tmp_path / "in.svg"
    doc.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    with pytest.raises(SystemExit) as stopped:
        Breaks().run([f"--output={tmp_path / 'out.svg'}", str(doc)])
    err = capsys.readouterr().err
    assert stopped.value.code % 256 == 251                  # inkex.ABORT_STATUS (-5 in some releases)
    assert err.count("\n") == 1 and "ZeroDivisionError: division by zero" in err and "Nothing was changed" in err, err
    assert not (tmp_path / "out.svg").exists()
    log = tmp_path / "config" / "extension.log"                 # the traceback, for whoever looks into it
    assert "internal error" in err and str(log) in err and "Traceback" in log.read_text() and "1 / 0" in log.read_text()


def test_a_process_is_alive_until_it_exits_and_a_zombie_counts_as_gone(common):
    """Restart the engine waits on this before starting the next engine; it never signals."""
    assert common.process_alive(os.getpid())
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert common.process_alive(child.pid)
        child.kill()
        wait_for(lambda: not common.process_alive(child.pid), timeout=10, every=0.02)
        assert not common.process_alive(child.pid)               # exited, not reaped yet: a zombie
        assert child.poll() is not None
    finally:
        child.kill()
        child.wait()
    assert not common.process_alive(child.pid)


def test_only_the_engine_recorded_in_engine_pid_counts_as_started_here(common, tmp_path):
    """The URL and the process ``engine.pid`` names, and the pid the engine itself gives."""
    folder = tmp_path / "config"
    folder.mkdir()
    config = common.Config(str(folder), {})
    url = "http://127.0.0.1:8765"
    assert common.started_here(config, url, {"pid": os.getpid()}) is None          # no engine.pid
    (folder / "engine.pid").write_text("not json")
    assert common.started_here(config, url, {"pid": os.getpid()}) is None
    (folder / "engine.pid").write_text('{"pid": %d, "url": "%s"}' % (os.getpid(), url))
    assert common.started_here(config, url, {"pid": os.getpid()}) == os.getpid()
    assert common.started_here(config, url, {}) == os.getpid()                       # an engine without a pid in /v1/health
    assert common.started_here(config, url, {"pid": os.getpid() + 1}) is None       # another engine answers there
    assert common.started_here(config, "http://127.0.0.1:9999", {"pid": os.getpid()}) is None
    gone = subprocess.Popen(["true"])
    gone.wait()
    (folder / "engine.pid").write_text('{"pid": %d, "url": "%s"}' % (gone.pid, url))
    assert common.started_here(config, url, {"pid": gone.pid}) is None


def test_restart_waits_for_an_engine_that_stopped_listening_but_still_runs(common, tmp_path, monkeypatch):
    """A retried Restart, after the first one ran out of time: the old engine no longer answers
    but is still saving its jobs (here: a process that never exits). No new engine may start on
    the same jobs folder; the run ends saying it is still stopping."""
    import inkex

    from extension_support import free_port

    folder = tmp_path / "config"
    folder.mkdir()
    config = common.Config(str(folder), {})
    url = f"http://127.0.0.1:{free_port()}"
    saving = subprocess.Popen(["sleep", "60"])
    started = []
    monkeypatch.setattr(common, "STOP_TIMEOUT", 0.5)
    monkeypatch.setattr(common, "connect", lambda *args: started.append(args))
    try:
        (folder / "engine.pid").write_text('{"pid": %d, "url": "%s"}' % (saving.pid, url))
        with pytest.raises(inkex.AbortExtension, match="is still stopping"):
            common.restart_engine(config, url)
        assert started == []
        saving.kill()
        saving.wait()
        common.restart_engine(config, url)                        # gone: now it starts one
        assert len(started) == 1
    finally:
        saving.kill()
        saving.wait()
