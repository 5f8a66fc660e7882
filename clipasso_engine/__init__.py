"""clipasso_engine: photo → abstract line sketch of a few editable Bézier strokes (CLIPasso)."""

from .strokes import Stroke

__version__ = "0.1.0"

__all__ = ["Stroke", "__version__"]
