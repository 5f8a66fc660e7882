"""The clipasso config folder, the one rule for the engine, the CLI, install.py and the extension.

The folder holds ``config.json`` (engine URL, engine Python, models), the engine's token, its
pid file and log. ``$CLIPASSO_CONFIG_DIR`` when set, else platformdirs' ``user_config_dir
("clipasso")``, computed here without platformdirs: this one file is also copied beside the
Inkscape extension (as ``clipasso_config_folder.py``, see install.py), whose Python has only the
standard library and may be as old as 3.8.
"""

import os
import sys

APP_NAME = "clipasso"
CONFIG_FILE = "config.json"


def config_dir() -> str:
    """The clipasso config folder: ``$CLIPASSO_CONFIG_DIR`` if set, else platformdirs'
    ``user_config_dir("clipasso")`` (the engine's rule), computed here without platformdirs."""
    override = os.environ.get("CLIPASSO_CONFIG_DIR")
    if override:
        return os.path.expanduser(override)
    return platform_config_dir(sys.platform)


def platform_config_dir(platform: str) -> str:
    """platformdirs' user config dir of "clipasso" for ``platform`` (a ``sys.platform`` value):
    Windows ``%LOCALAPPDATA%\\clipasso\\clipasso``; macOS ``$XDG_CONFIG_HOME/clipasso`` when that
    is an absolute path, else ``~/Library/Application Support/clipasso``; elsewhere
    ``$XDG_CONFIG_HOME/clipasso`` when absolute, else ``~/.config/clipasso``."""
    if platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(os.path.normpath(base), APP_NAME, APP_NAME)
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if xdg.startswith("/"):
        return os.path.join(xdg, APP_NAME)
    default = "~/Library/Application Support" if platform == "darwin" else "~/.config"
    return os.path.join(os.path.expanduser(default), APP_NAME)
