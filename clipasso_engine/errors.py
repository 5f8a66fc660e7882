"""The errors clipasso reports to a person: one family, a ``kind`` each.

Everything the engine, the CLI, the HTTP server or the extension can explain to a user is a
:class:`ClipassoError`; its message says what is wrong and what to do. The boundaries (the CLI's
``main``, the engine's job runner, the extension's effect) translate only this family (plus
``OSError``, the operating system's word on a file) into one clear message; anything else is a
bug: its traceback goes to the log and the user reads "internal error, see the log".

``kind`` travels in a failed job's status (``error_kind``), so a client tells errors apart by
type, never by message text. This one file is also copied beside the Inkscape extension (as
``clipasso_errors.py``, see install.py): standard library only, Python 3.8 syntax.
"""

from typing import Any, Dict, Optional


class ClipassoError(Exception):
    """Something a user can fix; ``str(exc)`` says what. ``detail``: facts a client may use to
    word its own message (JSON-safe values; e.g. the missing files of a :class:`WeightsError`)."""

    kind = "error"

    def __init__(self, message: str, detail: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.detail = dict(detail or {})


class SettingsError(ClipassoError, ValueError):
    """Settings (or strokes given as settings) that cannot be used."""

    kind = "settings"


class ImageError(ClipassoError, ValueError):
    """A photo that cannot be used; the message says what is wrong and what to do."""

    kind = "image"


class SvgError(ClipassoError, ValueError):
    """An SVG that cannot be read as strokes; the message names the element and the problem."""

    kind = "svg"


class WeightsError(ClipassoError):
    """CLIP weights that are missing or unreadable. ``detail["missing"]``: the missing file
    names (``RN101.pt``), ``detail["folder"]``: the one folder to put them in."""

    kind = "weights"


class DeviceError(ClipassoError, ValueError):
    """A compute device that was asked for but cannot be used here."""

    kind = "device"


class EngineUnreachable(ClipassoError):
    """Nothing answers at the engine URL (not started, wrong port, or unreachable host)."""

    kind = "unreachable"


class NotAnEngine(ClipassoError):
    """Something answers at the engine URL, but it is not a clipasso engine."""

    kind = "not_an_engine"
