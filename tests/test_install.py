"""install.py into a temporary HOME: install, install again, dry run, uninstall (no venv is
made: --no-engine or --python <this interpreter>)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from extension_support import REPO, SHARED, load_install, run_install

EXPECTED = sorted(
    [p.name for p in (REPO / "extension").glob("*.py")] + [p.name for p in (REPO / "inx").glob("*.inx")] + ["clipasso_client.py", "clipasso_config_folder.py", "clipasso_errors.py", "clipasso_limits.py"]
)


@pytest.fixture
def home(tmp_path):
    """A fresh HOME with no clipasso or Inkscape settings of the real user leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "INKSCAPE_", "CLIPASSO_"))}
    env["HOME"] = str(tmp_path)
    return tmp_path, env


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_install_reinstall_uninstall(home):
    root, env = home
    ext = root / ".config" / "inkscape" / "extensions" / "clipasso"
    config = root / ".config" / "clipasso"
    # things that are not ours and must survive: another extension, a token the engine wrote later
    (root / ".config" / "inkscape" / "extensions").mkdir(parents=True)
    other = root / ".config" / "inkscape" / "extensions" / "other.inx"
    other.write_text("<x/>")

    first = run_install(["--no-engine"], env)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in ext.iterdir()) == EXPECTED
    for source, copy in SHARED.items():                                   # the engine's, unchanged
        assert (ext / copy).read_bytes() == (REPO / "clipasso_engine" / source).read_bytes()
    settings = json.loads((config / "config.json").read_text())
    assert settings == {"engine_url": "http://127.0.0.1:8765", "engine_python": None}     # no token_path: the engine's folder
    assert str(ext) in first.stdout and "Sketch from image" in first.stdout
    if shutil.which("inkscape"):
        assert "checked: Inkscape's Python" in first.stdout

    # a user's edit of the URL survives a reinstall; --python fills in the engine; an earlier
    # version's token_path (never read) goes
    settings["engine_url"] = "http://127.0.0.1:9999"
    settings["token_path"] = "/elsewhere/token"
    (config / "config.json").write_text(json.dumps(settings))
    manifest = json.loads((config / "install-manifest.json").read_text())
    second = run_install(["--python", sys.executable, "--no-weights"], env)
    assert second.returncode == 0, second.stderr
    assert "already installed" in second.stdout
    settings = json.loads((config / "config.json").read_text())
    assert settings["engine_url"] == "http://127.0.0.1:9999" and settings["engine_python"] == str(Path(sys.executable).absolute())
    assert "token_path" not in settings
    assert json.loads((config / "install-manifest.json").read_text()) == manifest
    assert sorted(p.name for p in ext.iterdir()) == EXPECTED

    (config / "token").write_text("secret\n")
    before = snapshot(root)
    dry = run_install(["--uninstall", "--dry-run"], env)
    assert dry.returncode == 0 and "would remove" in dry.stdout
    assert snapshot(root) == before

    gone = run_install(["--uninstall"], env)
    assert gone.returncode == 0, gone.stderr
    assert not ext.exists() and not (config / "config.json").exists() and not (config / "install-manifest.json").exists()
    assert other.read_text() == "<x/>" and (config / "token").read_text() == "secret\n"
    again = run_install(["--uninstall"], env)
    assert again.returncode == 0 and "Nothing to remove" in again.stdout


def test_dry_run_changes_nothing(home):
    root, env = home
    out = run_install(["--no-engine", "--dry-run"], env)
    assert out.returncode == 0, out.stderr
    assert "would write extension file" in out.stdout and "would write config" in out.stdout
    assert not (root / ".config" / "clipasso").exists()
    # (asked where its folder is, Inkscape itself may create its profile: ours is the clipasso part)
    assert not (root / ".config" / "inkscape" / "extensions" / "clipasso").exists()

    venv = run_install(["--dry-run"], env)
    assert venv.returncode == 0, venv.stderr
    assert f"would create the engine environment: {sys.executable} -m venv {root}/.local/share/clipasso/venv" in venv.stdout
    assert f"would install the engine (torch and all): {root}/.local/share/clipasso/venv/bin/python -m pip install" in venv.stdout
    # the CLIP weights come down at install time
    assert (f"would download the CLIP weights RN101.pt and ViT-B-32.pt: {root}/.local/share/clipasso/venv/bin/python "
            "-m clipasso_engine models --download RN101 ViT-B-32") in venv.stdout
    assert "would download the CLIP" not in run_install(["--dry-run", "--no-weights"], env).stdout
    cpu = run_install(["--dry-run", "--torch-index", "https://download.pytorch.org/whl/cpu"], env).stdout
    torch_step = cpu.index("-m pip install --upgrade torch torchvision --index-url https://download.pytorch.org/whl/cpu")
    assert torch_step < cpu.index("would install the engine (torch and all)")     # torch first, from that index
    if Path("/usr/bin/python3").exists():   # an environment without the engine gets it installed
        other = run_install(["--dry-run", "--python", "/usr/bin/python3"], env)
        assert "would install the engine into /usr/bin/python3" in other.stdout
    assert not (root / ".local" / "share" / "clipasso").exists()


def test_offline_install_names_both_weights_files_and_the_folder(home):
    """No network (a proxy that refuses): the install goes on, and its summary names every
    missing file and the one folder to put them in."""
    root, env = home
    env = dict(env, CLIPASSO_CLIP_DIR=str(root / "weights"), https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    out = run_install(["--python", sys.executable, "--inkscape-profile", str(root / "profile")], env, timeout=300)
    assert out.returncode in (0, 1), out.stderr          # 1: Inkscape's Python may lack inkex here
    assert (f"CLIP weights: could not download RN101.pt and ViT-B-32.pt (no network?). Put them in {root / 'weights'}, "
            "or run install.py again with a network connection.") in out.stdout, out.stdout


def test_profile_dir_and_config_dir_overrides(home):
    root, env = home
    env = dict(env, CLIPASSO_CONFIG_DIR=str(root / "cfg"))
    out = run_install(["--no-engine", "--inkscape-profile", str(root / "profile"), "--engine-url", "http://127.0.0.1:4321"], env)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (root / "profile" / "extensions" / "clipasso").iterdir()) == EXPECTED
    assert json.loads((root / "cfg" / "config.json").read_text())["engine_url"] == "http://127.0.0.1:4321"
    assert run_install(["--uninstall"], env).returncode == 0
    # the profile folder stays only if Inkscape (asked where its data lives) put files in it
    assert not (root / "profile" / "extensions" / "clipasso").exists() and not (root / "cfg").exists()


def test_outdated_files_of_an_earlier_version_go(home):
    root, env = home
    assert run_install(["--no-engine"], env).returncode == 0
    config = root / ".config" / "clipasso"
    ext = root / ".config" / "inkscape" / "extensions" / "clipasso"
    old = ext / "clipasso_old_module.py"
    old.write_text("")
    manifest = json.loads((config / "install-manifest.json").read_text())
    manifest["files"].append(str(old))
    (config / "install-manifest.json").write_text(json.dumps(manifest))
    assert run_install(["--no-engine"], env).returncode == 0
    assert not old.exists() and str(old) not in (config / "install-manifest.json").read_text()


@pytest.mark.parametrize("before", ["absent", "empty", "user files"])
def test_uninstall_removes_a_venv_folder_only_if_install_made_it(tmp_path, monkeypatch, before):
    """``--venv DIR`` into a folder of the user's: the venv goes in, but --uninstall leaves the folder."""
    installer = load_install()
    venv = tmp_path / "envs" / "clipasso"
    if before != "absent":
        venv.mkdir(parents=True)
    if before == "user files":
        (venv / "notes.txt").write_text("mine")

    def fake_run(self, command, what):         # no real venv or pip: make the venv's python appear
        if command[1:3] == ["-m", "venv"]:
            python = installer.venv_python(Path(command[3]))
            python.parent.mkdir(parents=True)
            python.write_text("")

    monkeypatch.setattr(installer.Installer, "run", fake_run)
    inst = installer.Installer(tmp_path / "config", dry_run=False)
    args = argparse.Namespace(python=None, venv=str(venv))
    assert installer.set_up_engine(args, inst) == str(installer.venv_python(venv))
    inst.save_manifest()

    again = installer.Installer(tmp_path / "config", dry_run=False)    # --uninstall, from the manifest
    again.remove_files()
    again.remove_dirs()
    if before == "user files":
        assert (venv / "notes.txt").read_text() == "mine"
    else:
        assert not venv.exists()
