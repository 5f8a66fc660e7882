"""The engine's limits and preset names are declared once (clipasso_engine/limits.py); the places
that cannot import them repeat them and are checked equal here: the dialogs in inx/ (static XML)
and what the extension scripts use (the copy clipasso_limits.py install.py puts beside them)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from typing import get_args

import pytest

from clipasso_engine import limits
from clipasso_engine.cli import build_parser
from clipasso_engine.regions import Region
from clipasso_engine.settings import PRESETS, SketchSettings

from extension_support import EXTENSION_DIR, REPO

NS = "{http://www.inkscape.org/namespace/inkscape/extension}"
# inx parameter → (its (min, max) in the dialog, the limit). 0 in a dialog means "the preset's".
DIALOG_BOUNDS = {
    "clipasso_sketch.inx": {"strokes": (1, limits.MAX_STROKES), "iterations": (0, limits.MAX_ITERATIONS),
                            "seeds": (0, limits.MAX_SEEDS), "seed": (0, limits.MAX_SEED), "width": (0.5, limits.MAX_WIDTH)},
    "clipasso_refine.inx": {"iterations": (0, limits.MAX_ITERATIONS), "seed": (0, limits.MAX_SEED)},
}


def params(inx: str) -> dict[str, ET.Element]:
    root = ET.parse(REPO / "inx" / inx).getroot()
    return {p.get("name"): p for p in root.iter(f"{NS}param")}


def field_bound(name: str, kind: str) -> float:
    """A SketchSettings field's ``le`` (kind "max") or ``ge``/``gt`` (kind "min") constraint."""
    for meta in SketchSettings.model_fields[name].metadata:
        for attr in (("le",) if kind == "max" else ("ge", "gt")):
            if getattr(meta, attr, None) is not None:
                return getattr(meta, attr)
    raise AssertionError(f"{name} has no {kind} bound")


@pytest.mark.parametrize("inx", sorted(DIALOG_BOUNDS))
def test_dialog_bounds_are_the_engines_limits(inx):
    found = params(inx)
    for name, (low, high) in DIALOG_BOUNDS[inx].items():
        p = found[name]
        assert (float(p.get("min")), float(p.get("max"))) == (low, high), (inx, name)
        assert field_bound(name, "max") == high, name             # the engine accepts exactly what the dialog offers
        assert low == 0 or low >= field_bound(name, "min"), name  # 0: the preset's value, not sent


@pytest.mark.parametrize("inx", ["clipasso_sketch.inx", "clipasso_refine.inx"])
def test_dialog_choices_are_the_engines_names(inx):
    found = params(inx)
    presets = [o.get("value") for o in found["preset"].iter(f"{NS}option")]
    roles = [o.get("value") for o in found["region_role"].iter(f"{NS}option")]
    assert sorted(presets) == sorted(limits.PRESET_NAMES)
    assert sorted(roles) == sorted(limits.REGION_ROLES)


def test_engine_names_come_from_limits():
    assert limits.PRESET_NAMES == ("auto", *PRESETS)                    # every preset but auto has values
    assert get_args(SketchSettings.model_fields["preset"].annotation) == limits.PRESET_NAMES
    assert get_args(Region.model_fields["role"].annotation) == limits.REGION_ROLES
    sketch = build_parser()._subparsers._group_actions[0].choices["sketch"]
    (preset,) = [a for a in sketch._actions if a.dest == "preset"]
    assert tuple(preset.choices) == limits.PRESET_NAMES
    for name, limit in (("strokes", limits.MAX_STROKES), ("iterations", limits.MAX_ITERATIONS),
                        ("seeds", limits.MAX_SEEDS), ("seed", limits.MAX_SEED), ("width", limits.MAX_WIDTH)):
        assert field_bound(name, "max") == limit, name
        SketchSettings(**{name: limit})                              # the limit itself is accepted …
        with pytest.raises(ValueError):
            SketchSettings(**{name: limit + 1})                      # … one more is not


def test_extension_scripts_hold_no_copies_of_the_limits():
    """The extension takes every limit and name from clipasso_limits (the installed copy of
    limits.py): no script assigns a module constant that limits.py declares."""
    declared = {n for n in vars(limits) if n.isupper()}
    for script in sorted(EXTENSION_DIR.glob("*.py")):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            assert not names & declared, f"{script.name} declares {sorted(names & declared)}; import them from clipasso_limits"

