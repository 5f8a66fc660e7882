"""SketchResult: the strokes of a finished sketch and everything worth keeping about the run."""

from __future__ import annotations

import io
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from lxml import etree

from .strokes import Stroke, strokes_to_tensors
from .svg import CLIPASSO_NS, INKSCAPE_NS, SVG_NS, add_stroke_path, new_document, strokes_to_svg, to_text

RANDOM_WARNING = "RANDOM CLIP WEIGHTS: a test of the machinery, not a real sketch"


@dataclass
class SketchResult:
    """A sketch in photo pixels.

    ``strokes``: the best seed's strokes of the most detailed level. ``levels``: stroke count →
    strokes (every level asked for; one entry without ``levels``). ``width``/``height``: photo
    size in pixels. ``loss``/``seed``: best eval loss of ``strokes`` and its seed. ``history``:
    ``[{"iteration", "loss"}]`` at each evaluation. ``engine``: how it was made (models, whether
    their weights were random, device, iterations run, why it stopped, seconds).
    """

    strokes: list[Stroke]
    levels: dict[int, list[Stroke]]
    width: int
    height: int
    loss: Optional[float]
    seed: int
    history: list[dict] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=dict)
    level_meta: dict[int, dict[str, Any]] = field(default_factory=dict)   # per level: seed, loss, clip_score

    @property
    def random_weights(self) -> bool:
        return bool(self.engine.get("random_weights"))

    def _description(self) -> str:
        parts = [f"CLIPasso sketch, seed {self.seed}, loss {self.loss if self.loss is not None else 'n/a'}"]
        score = self.engine.get("clip_score")
        if score is not None:
            parts[0] += f", CLIP score {score:.4f}"
        if self.random_weights:
            parts.append(RANDOM_WARNING)
        return "; ".join(parts)

    def to_svg(self, level: Optional[int] = None) -> str:
        """SVG text in photo pixels. With several levels and no ``level`` chosen, one Inkscape
        layer per level (most detailed on top); else the strokes of ``level`` (default: main)."""
        if level is not None or len(self.levels) == 1:
            chosen = self.strokes if level is None else self.levels[level]
            return strokes_to_svg(chosen, self.width, self.height, title="CLIPasso sketch", description=self._description())
        root = new_document(self.width, self.height, title="CLIPasso sketch", description=self._description())
        for n in sorted(self.levels):
            meta = self.level_meta.get(n, {})
            layer = etree.SubElement(
                root,
                f"{{{SVG_NS}}}g",
                attrib={
                    "id": f"level{n}",
                    f"{{{INKSCAPE_NS}}}groupmode": "layer",
                    f"{{{INKSCAPE_NS}}}label": f"CLIPasso {n} strokes, seed {meta.get('seed', self.seed)}",
                },
                nsmap={"clipasso": CLIPASSO_NS},
            )
            if meta.get("clip_score") is not None:          # as the extension marks its layers
                layer.set(f"{{{CLIPASSO_NS}}}score", f"{meta['clip_score']:.6f}")
            for i, s in enumerate(self.levels[n]):
                add_stroke_path(layer, s, f"level{n}-stroke{i}")
        return to_text(root)

    def to_json(self) -> dict[str, Any]:
        """The strokes JSON (docs/method.md §6, "Strokes JSON"): width, height, levels, seed, loss, engine, history."""
        return {
            "width": self.width,
            "height": self.height,
            "levels": {str(n): [s.to_json() for s in strokes] for n, strokes in sorted(self.levels.items())},
            "level_info": {str(n): meta for n, meta in sorted(self.level_meta.items())},
            "seed": self.seed,
            "loss": self.loss,
            "history": [{k: finite_or_none(v) if isinstance(v, float) else v for k, v in h.items()} for h in self.history],
            "engine": self.engine,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SketchResult":
        """Inverse of :meth:`to_json` (e.g. a result from the engine's HTTP API); the main
        strokes are the most detailed level. Raises ``ValueError`` on malformed strokes."""
        levels = {int(n): [Stroke.from_json(s) for s in strokes] for n, strokes in data["levels"].items()}
        if not levels:
            raise ValueError("the strokes JSON has no levels")
        return cls(
            strokes=levels[max(levels)],
            levels=levels,
            width=int(data["width"]),
            height=int(data["height"]),
            loss=data.get("loss"),
            seed=int(data["seed"]),
            history=list(data.get("history", [])),
            engine=dict(data.get("engine", {})),
            level_meta={int(n): meta for n, meta in data.get("level_info", {}).items()},
        )

    def render(self, level: Optional[int] = None) -> np.ndarray:
        """The sketch as our rasterizer draws it: ``(height, width)`` uint8 grey, white paper."""
        from .raster import render

        strokes = self.strokes if level is None else self.levels[level]
        if not strokes:
            return np.full((self.height, self.width), 255, np.uint8)
        pts, widths = strokes_to_tensors(strokes)
        ink = render(pts[None], widths[None], self.height, self.width)[0].numpy()
        return np.round(255 * (1.0 - ink)).astype(np.uint8)

    def png_bytes(self, level: Optional[int] = None) -> bytes:
        """The sketch as PNG file contents, photo-sized, grey on white."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.render(level), "L").save(buf, format="PNG")
        return buf.getvalue()

    def output_files(self, svg: Path, *, json_path: Optional[Path] = None, png: Optional[Path] = None) -> list[tuple[Path, bytes]]:
        """The files of this sketch as (path, contents), ready for :func:`write_all_atomic`: the
        SVG, the strokes JSON if ``json_path``, and the PNG if ``png`` (with several levels, one
        file per level: ``NAME-<strokes>.png``). The paths are used as given (relative ones stay
        relative), so a worker can render the files and another process can place them."""
        outputs: list[tuple[Path, bytes]] = [(svg, self.to_svg().encode("utf-8"))]
        if json_path is not None:
            outputs.append((json_path, json.dumps(self.to_json(), indent=1).encode("utf-8")))
        if png is not None:
            outputs += [(path, self.png_bytes(n)) for path, n in level_png_paths(png, list(self.levels))]
        return outputs

    def to_png(self, path: str | os.PathLike, level: Optional[int] = None) -> None:
        """Write the sketch as a PNG of the photo's size (written whole or not at all)."""
        write_all_atomic([(Path(path), self.png_bytes(level))])


def write_all_atomic(outputs: Sequence[tuple[Path, bytes]]) -> None:
    """Write several files all or nothing: each goes to a temporary sibling first, and only when
    every one is written are they renamed into place. A failure leaves no partial file.

    Each temporary file gets a new random name and is created exclusively (``O_EXCL``), so a
    file or link planted in the folder beforehand is never written through; the rename then
    replaces the target itself (a link at the target's name included, not what it points to)."""
    temps: list[Path] = []
    try:
        for target, data in outputs:
            temps.append(_exclusive_sibling(target))
            with open(temps[-1], "wb") as f:
                f.write(data)
        for (target, _), tmp in zip(outputs, temps):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def level_png_paths(png: Path, levels: Sequence[int]) -> list[tuple[Path, Optional[int]]]:
    """Where the PNG of each level goes, with the level (None: the only one): ``png`` itself for
    one level, else ``NAME-<strokes>.png`` beside it for each."""
    if len(levels) <= 1:
        return [(png, None)]
    return [(png.with_name(f"{png.stem}-{n}{png.suffix or '.png'}"), n) for n in levels]


def _exclusive_sibling(target: Path) -> Path:
    """A new empty file beside ``target`` that did not exist before (mode 0666 less the umask,
    as the target would get)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue


def finite_or_none(v: float) -> Optional[float]:
    """``v``, or None for NaN and ±infinity, which JSON cannot carry."""
    return v if math.isfinite(v) else None
