"""The ``clipasso`` command, run for real: files written, errors as one line, nothing partial."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image
from skimage import data

from clipasso_engine import cli
from clipasso_engine.cli import main
from clipasso_engine.svg import svg_to_strokes

TINY = ["--clip", "random:tiny-RN", "--saliency-clip", "random:tiny-ViT", "--device", "cpu",
        "--preset", "fast", "--iterations", "6", "--eval-every", "2", "-q"]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "coffee.png"
    Image.fromarray(data.coffee()).save(path)             # 400 × 600 RGB
    return path


def test_console_script_writes_svg_png_json(photo, tmp_path):
    out = tmp_path / "s.svg"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "clipasso_engine", "sketch", str(photo), "-o", str(out), "--strokes", "10",
         "--png", str(tmp_path / "s.png"), "--json", str(tmp_path / "s.json"), *TINY],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RANDOM CLIP WEIGHTS" in proc.stderr
    root = etree.fromstring(out.read_bytes())
    assert root.get("viewBox") == "0 0 600 400"
    strokes, w, h = svg_to_strokes(out.read_bytes())
    assert (w, h) == (600, 400) and len(strokes) == 10
    margin = 0.1 * 600          # control points may wander a little past the border
    for s in strokes:
        assert all(-margin <= x <= w + margin and -margin <= y <= h + margin for x, y in s.points)
        assert 0 <= s.points[0][0] <= w and 0 <= s.points[0][1] <= h
    png = Image.open(tmp_path / "s.png")
    assert png.size == (600, 400)
    assert png.convert("L").getextrema()[0] < 128          # some ink
    info = json.loads((tmp_path / "s.json").read_text())
    assert len(info["levels"]["10"]) == 10 and info["engine"]["random_weights"] is True


def test_random_weights_are_the_same_in_every_process(tmp_path):
    """Two separate processes with the same seed write the same strokes (random towers are seeded)."""
    outs = []
    for name in ("a.svg", "b.svg"):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "clipasso_engine", "sketch", "-o", str(out), "--strokes", "5", *TINY],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        outs.append(svg_to_strokes(out.read_bytes())[0])
    assert outs[0] == outs[1]


def test_default_image_and_levels(tmp_path):
    out = tmp_path / "levels.svg"
    assert main(["sketch", "-o", str(out), "--levels", "2,3", "--png", str(tmp_path / "l.png"), *TINY]) == 0
    root = etree.fromstring(out.read_bytes())
    layers = root.findall("{http://www.w3.org/2000/svg}g")
    assert [len(g) for g in layers] == [2, 3]
    assert root.get("viewBox") == "0 0 451 300"             # the bundled sample photo
    assert (tmp_path / "l-2.png").exists() and (tmp_path / "l-3.png").exists()


def test_refine_from_svg_with_locked_strokes(photo, tmp_path):
    first = tmp_path / "first.svg"
    assert main(["sketch", str(photo), "-o", str(first), "--strokes", "4", *TINY]) == 0
    second = tmp_path / "second.svg"
    assert main(["sketch", str(photo), "-o", str(second), "--init-svg", str(first), "--lock", "1", *TINY]) == 0
    a, _, _ = svg_to_strokes(first.read_bytes())
    b, _, _ = svg_to_strokes(second.read_bytes())
    assert len(b) == 4 and b[1] == a[1] and b[0] != a[0]


def test_init_svg_at_another_size_is_scaled_onto_the_photo(photo, tmp_path):
    """A 300×200 sketch of the 600×400 photo: its strokes double in size; a 300×300 one is refused."""
    half = tmp_path / "half.svg"
    half.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 200">'
                    '<path d="M 10 20 C 30 40 50 60 70 80" stroke-width="2"/></svg>')
    out = tmp_path / "scaled.svg"
    assert main(["sketch", str(photo), "-o", str(out), "--init-svg", str(half), "--lock", "0", *TINY]) == 0
    (s,), w, h = svg_to_strokes(out.read_bytes())
    assert (w, h) == (600, 400)
    assert s.points == ((20, 40), (60, 80), (100, 120), (140, 160)) and s.width == 4


def _fails(argv: list[str], capsys, match: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("clipasso: error: ") and match in err[0], err


@pytest.mark.parametrize(
    "image,extra,match",
    [
        ("missing.png", [], "not found"),
        ("corrupt.png", [], "not a readable image"),
        ("dot.png", [], "1×1"),
        ("photo", ["--strokes", "0"], "--strokes"),
        ("photo", ["--levels", "4,x"], None),
        ("photo", ["--lock", "1"], "--lock needs --init-svg"),
        ("photo", ["--init-svg", "nowhere.svg"], "cannot read --init-svg"),
        ("photo", ["--init-svg", "square.svg"], "shapes differ"),
        ("photo", ["--json", "."], "it is a folder"),
        ("photo", ["--clip", "bad_weights.pt"], "not a readable CLIP weights file"),
    ],
)
def test_bad_input_is_one_line_and_no_file(photo, tmp_path, capsys, monkeypatch, image, extra, match):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "square.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9"><path d="M0 0L5 5"/></svg>')
    (tmp_path / "bad_weights.pt").write_bytes(b"not torch at all" * 64)
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    src = str(photo) if image == "photo" else str(tmp_path / image)
    out = tmp_path / "out.svg"
    argv = ["sketch", src, "-o", str(out), *TINY, *extra]
    if match is None:                                     # argparse's own usage error
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    else:
        _fails(argv, capsys, match)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".svg", ".json") or p.name.endswith(".partial")] == ["square.svg"]


def test_missing_weights_fail_fast_with_directions(photo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLIPASSO_CLIP_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "real.svg"
    _fails(["sketch", str(photo), "-o", str(out), "--clip", "RN101", "--no-download", "-q"], capsys,
           "RN101.pt (model RN101) and ViT-B-32.pt (model ViT-B-32)")
    assert not out.exists()
    # only the start-point model missing: the hint names its own flag
    _fails(["sketch", str(photo), "-o", str(out), "--clip", "random:tiny-RN", "--saliency-clip", "ViT-B-32",
            "--no-download", "-q"], capsys, "`--saliency-clip /path/ViT-B-32.pt`")


def test_internal_error_keeps_its_traceback_in_the_log(photo, tmp_path, capsys, monkeypatch):
    """A bug is not a user error: one line naming the log, the traceback in it, status 1."""
    monkeypatch.setenv("CLIPASSO_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(cli, "cmd_sketch", lambda args: {}["no such key"])
    assert main(["sketch", str(photo), "-o", str(tmp_path / "x.svg")]) == cli.EXIT_INTERNAL
    log = tmp_path / "config" / cli.CLI_LOG
    assert capsys.readouterr().err.strip() == f"clipasso: internal error (KeyError), see {log}"
    assert "Traceback" in log.read_text() and "no such key" in log.read_text()


def test_models_command_lists_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLIPASSO_CLIP_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "RN101" in out and "MISSING" in out and str(tmp_path) in out
    assert "clipasso models --download RN101 ViT-B-32" in out       # one line gets every missing file
    assert "/RN101.pt" in out and "/ViT-B-32.pt" in out and "openaipublic" in out


def test_the_paper_augmentation_flags_reach_the_settings():
    from clipasso_engine.cli import build_parser, settings_from_args
    from clipasso_engine.settings import SketchSettings

    def settings(*flags: str) -> SketchSettings:
        return settings_from_args(build_parser().parse_args(["sketch", "-o", "x.svg", *flags]))

    s = settings("--preset", "fast", "--aug-passes", "2", "--aug-streams", "seed")
    assert (s.aug_passes, s.aug_streams, s.aug_bank) == (2, "seed", 64)      # explicit flags win, the rest from fast
    s = settings("--preset", "paper")
    assert (s.aug_passes, s.aug_streams) == (2, "seed")
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="aug_passes"):
        settings("--aug-passes", "3")


def test_help_does_not_import_torch():
    """The flags come from SketchSettings, yet ``clipasso sketch --help`` answers without loading
    torch (seconds on a laptop): settings, limits and the region model are torch-free."""
    code = ("import sys\nfrom clipasso_engine.cli import main\n"
            "try:\n    main(['sketch', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "--regions FILE.json" in run.stdout and "--aug-streams {run,seed}" in run.stdout
    assert run.stdout.strip().endswith("no torch")


def test_every_setting_has_its_cli_flag_and_http_field():
    """SketchSettings is the one declaration of a setting: the sketch and batch flags are made from
    its fields, and the HTTP job request carries it whole (its OpenAPI schema lists each field)."""
    from clipasso_engine.cli import build_parser
    from clipasso_engine.server.models import JobRequest
    from clipasso_engine.settings import SketchSettings

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    fields = set(SketchSettings.model_fields)
    for command, expected in (("sketch", fields), ("batch", fields - {"mask"})):   # --mask goes with sketch's --mask-image
        dests = {a.dest for a in sub.choices[command]._actions}
        assert expected <= dests, f"{command} lacks flags for {sorted(expected - dests)}"
    schema = JobRequest.model_json_schema()
    props = schema["$defs"]["SketchSettings"]["properties"]
    assert fields == set(props)
    # a flag parses into the field's type: a bool flag, a choice, a list, the stage weights
    args = build_parser().parse_args(["sketch", "-o", "x.svg", "--no-saliency", "--precision", "fp32", "--levels", "4,8",
                                      "--geometric-weights", "layer2=0.5,layer3=2", "--min_improvement", "0.01"])
    s = SketchSettings(**{k: getattr(args, k) for k in fields if hasattr(args, k)})
    assert (s.saliency, s.precision, s.levels, s.min_improvement) == (False, "fp32", [4, 8], 0.01)
    assert s.geometric_weights == {"layer2": 0.5, "layer3": 2.0}
