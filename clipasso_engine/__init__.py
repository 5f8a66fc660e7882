"""clipasso_engine: photo → abstract line sketch of a few editable Bézier strokes (CLIPasso).

Public API: ``sketch(image, settings, on_progress, should_stop) -> SketchResult``,
``SketchSettings``, ``SketchResult``, ``Stroke``, and ``ClipassoError`` (every error a user
can fix; docs/errors.md). They load on first use, so importing the
package (or running ``clipasso --help``) does not pay for torch and CLIP up front.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "sketch": "api",
    "SketchSettings": "settings",
    "SketchResult": "result",
    "Stroke": "strokes",
    "ClipassoError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'clipasso_engine' has no attribute {name!r}")


__all__ = ["sketch", "SketchSettings", "SketchResult", "Stroke", "ClipassoError", "__version__"]
