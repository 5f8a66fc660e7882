"""SVG path data and transforms → cubic Bézier pieces (pure Python, no SVG library).

A designer may hand-edit our strokes into anything SVG path data allows: lines, horizontal and
vertical lines, quadratics, smooth curves, elliptical arcs, several subpaths, relative commands.
Every drawn piece becomes one cubic segment (4 control points), exactly for lines and
quadratics, and within ~1e-4 of the radius for arcs (≤ 90° per cubic).

Transforms are 2×3 affine matrices ``(a, b, c, d, e, f)`` as in SVG's ``matrix()``:
``x' = a·x + c·y + e``, ``y' = b·x + d·y + f``.
"""

from __future__ import annotations

import math
import re

Point = tuple[float, float]
Cubic = tuple[Point, Point, Point, Point]
Matrix = tuple[float, float, float, float, float, float]

IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

# an SVG number: sign, digits with an optional fraction, optional exponent
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtAaZz])|({NUMBER})")
_ARGS = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}


class PathDataError(ValueError):
    """Path data or a transform that cannot be read; the message says where."""


def parse_path(d: str) -> list[Cubic]:
    """All drawn pieces of SVG path data ``d`` as absolute cubic segments, in user units."""
    tokens = _tokenize(d)
    cubics: list[Cubic] = []
    cur: Point = (0.0, 0.0)
    start: Point = (0.0, 0.0)
    last_ctrl: Point | None = None      # reflected by S/s and T/t
    last_cmd = ""
    i = 0
    cmd = ""
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, str):
            if not cmd and tok not in "Mm":
                raise PathDataError(f"path data must start with a moveto (M or m), got {tok!r}")
            cmd, i = tok, i + 1
        elif not cmd:
            raise PathDataError(f"path data must start with a moveto (M or m), got {tok!r}")
        elif cmd in "Mm":
            cmd = "l" if cmd == "m" else "L"    # extra pairs after a moveto are linetos
        elif cmd in "Zz":
            raise PathDataError(f"unexpected number {tok!r} after Z in path data")
        up = cmd.upper()
        rel = cmd.islower()
        n = _ARGS[up]
        args = tokens[i : i + n]
        if len(args) < n or any(isinstance(a, str) for a in args):
            raise PathDataError(f"command {cmd!r} needs {n} numbers in path data {d[:60]!r}")
        i += n
        ox, oy = cur if rel else (0.0, 0.0)
        ctrl: Point | None = None
        if up == "M":
            cur = start = (args[0] + ox, args[1] + oy)
        elif up == "Z":
            if cur != start:
                cubics.append(_line(cur, start))
            cur = start
        elif up in "LHV":
            if up == "L":
                end = (args[0] + ox, args[1] + oy)
            elif up == "H":
                end = (args[0] + ox, cur[1])
            else:
                end = (cur[0], args[0] + oy)
            cubics.append(_line(cur, end))
            cur = end
        elif up in "CS":
            if up == "C":
                c1 = (args[0] + ox, args[1] + oy)
                rest = args[2:]
            else:
                c1 = _reflect(last_ctrl, cur) if last_cmd in "CS" else cur
                rest = args
            c2 = (rest[0] + ox, rest[1] + oy)
            end = (rest[2] + ox, rest[3] + oy)
            cubics.append((cur, c1, c2, end))
            cur, ctrl = end, c2
        elif up in "QT":
            if up == "Q":
                q = (args[0] + ox, args[1] + oy)
                end = (args[2] + ox, args[3] + oy)
            else:
                q = _reflect(last_ctrl, cur) if last_cmd in "QT" else cur
                end = (args[0] + ox, args[1] + oy)
            cubics.append(_quad(cur, q, end))
            cur, ctrl = end, q
        else:  # A
            end = (args[5] + ox, args[6] + oy)
            cubics.extend(_arc(cur, args[0], args[1], args[2], args[3] != 0, args[4] != 0, end))
            cur = end
        last_ctrl, last_cmd = ctrl, up
    return cubics


def _tokenize(d: str) -> list[str | float]:
    """Commands as strings and numbers as floats. Arc flags may be written without separators
    ("a5 5 0 105 5"), so a lone 0/1 is read as its own token where a flag is due."""
    out: list[str | float] = []
    pos, n = 0, len(d)
    cmd, argi = "", 0
    while pos < n:
        if d[pos].isspace() or d[pos] == ",":
            pos += 1
            continue
        if cmd and cmd in "Aa" and (argi % 7) in (3, 4) and d[pos] in "01":
            out.append(float(d[pos]))
            pos, argi = pos + 1, argi + 1
            continue
        m = _TOKEN.match(d, pos)
        if not m or m.end() == pos:
            raise PathDataError(f"cannot read path data at character {pos}: {d[pos:pos + 20]!r}")
        if m.group(1):
            cmd, argi = m.group(1), 0
            out.append(cmd)
        else:
            out.append(float(m.group(2)))
            argi += 1
        pos = m.end()
    return out


def _reflect(p: Point | None, about: Point) -> Point:
    if p is None:
        return about
    return (2 * about[0] - p[0], 2 * about[1] - p[1])


def _line(p0: Point, p3: Point) -> Cubic:
    dx, dy = p3[0] - p0[0], p3[1] - p0[1]
    return (p0, (p0[0] + dx / 3, p0[1] + dy / 3), (p0[0] + 2 * dx / 3, p0[1] + 2 * dy / 3), p3)


def _quad(p0: Point, q: Point, p3: Point) -> Cubic:
    """Exact degree elevation of a quadratic Bézier."""
    c1 = (p0[0] + 2 / 3 * (q[0] - p0[0]), p0[1] + 2 / 3 * (q[1] - p0[1]))
    c2 = (p3[0] + 2 / 3 * (q[0] - p3[0]), p3[1] + 2 / 3 * (q[1] - p3[1]))
    return (p0, c1, c2, p3)


def _arc(p0: Point, rx: float, ry: float, phi_deg: float, large: bool, sweep: bool, p1: Point) -> list[Cubic]:
    """Elliptical arc (SVG endpoint parameterization, spec F.6.5–F.6.6) as cubics of ≤ 90° each."""
    if p0 == p1:
        return []
    rx, ry = abs(rx), abs(ry)
    if rx == 0 or ry == 0:
        return [_line(p0, p1)]
    phi = math.radians(phi_deg % 360)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx, dy = (p0[0] - p1[0]) / 2, (p0[1] - p1[1]) / 2
    x1p, y1p = cos_p * dx + sin_p * dy, -sin_p * dx + cos_p * dy
    lam = (x1p / rx) ** 2 + (y1p / ry) ** 2
    if lam > 1:                          # radii too small: scale up (spec F.6.6)
        s = math.sqrt(lam)
        rx, ry = rx * s, ry * s
    num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p
    den = rx * rx * y1p * y1p + ry * ry * x1p * x1p
    coef = math.sqrt(max(0.0, num / den)) * (-1 if large == sweep else 1)
    cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
    cx = cos_p * cxp - sin_p * cyp + (p0[0] + p1[0]) / 2
    cy = sin_p * cxp + cos_p * cyp + (p0[1] + p1[1]) / 2
    theta1 = math.atan2((y1p - cyp) / ry, (x1p - cxp) / rx)
    theta2 = math.atan2((-y1p - cyp) / ry, (-x1p - cxp) / rx)
    delta = theta2 - theta1
    if sweep and delta < 0:
        delta += 2 * math.pi
    elif not sweep and delta > 0:
        delta -= 2 * math.pi
    pieces = max(1, math.ceil(abs(delta) / (math.pi / 2) - 1e-9))
    step = delta / pieces
    k = 4 / 3 * math.tan(step / 4)

    def point(t: float) -> Point:
        x, y = rx * math.cos(t), ry * math.sin(t)
        return (cx + cos_p * x - sin_p * y, cy + sin_p * x + cos_p * y)

    def deriv(t: float) -> Point:
        x, y = -rx * math.sin(t), ry * math.cos(t)
        return (cos_p * x - sin_p * y, sin_p * x + cos_p * y)

    out: list[Cubic] = []
    for j in range(pieces):
        t0, t1 = theta1 + j * step, theta1 + (j + 1) * step
        a, b = point(t0), point(t1)
        da, db = deriv(t0), deriv(t1)
        a = p0 if j == 0 else a
        b = p1 if j == pieces - 1 else b
        out.append((a, (a[0] + k * da[0], a[1] + k * da[1]), (b[0] - k * db[0], b[1] - k * db[1]), b))
    return out


_TRANSFORM = re.compile(r"\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)\s*,?")


def parse_transform(text: str | None) -> Matrix:
    """An SVG ``transform`` attribute as one affine matrix (functions applied right to left)."""
    m = IDENTITY
    if not text or not text.strip():
        return m
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TRANSFORM.match(text, pos)
        if not match:
            raise PathDataError(f"cannot read transform {text!r} at character {pos}")
        name = match.group(1)
        if not re.fullmatch(r"[\s,]*", re.sub(NUMBER, " ", match.group(2))):
            raise PathDataError(f"bad numbers in {name}() of transform {text!r}")
        v = [float(x) for x in re.findall(NUMBER, match.group(2))]
        m = multiply(m, _one_transform(name, v, text))
        pos = match.end()
    return m


def _one_transform(name: str, v: list[float], text: str) -> Matrix:
    counts = {"matrix": (6,), "translate": (1, 2), "scale": (1, 2), "rotate": (1, 3), "skewX": (1,), "skewY": (1,)}
    if len(v) not in counts[name]:
        raise PathDataError(f"{name}() takes {' or '.join(map(str, counts[name]))} numbers in transform {text!r}")
    if name == "matrix":
        return tuple(v)  # type: ignore[return-value]
    if name == "translate":
        return (1.0, 0.0, 0.0, 1.0, v[0], v[1] if len(v) > 1 else 0.0)
    if name == "scale":
        return (v[0], 0.0, 0.0, v[1] if len(v) > 1 else v[0], 0.0, 0.0)
    if name == "rotate":
        a = math.radians(v[0])
        r = (math.cos(a), math.sin(a), -math.sin(a), math.cos(a), 0.0, 0.0)
        if len(v) == 3:
            return multiply(multiply((1, 0, 0, 1, v[1], v[2]), r), (1, 0, 0, 1, -v[1], -v[2]))
        return r
    if name == "skewX":
        return (1.0, 0.0, math.tan(math.radians(v[0])), 1.0, 0.0, 0.0)
    return (1.0, math.tan(math.radians(v[0])), 0.0, 1.0, 0.0, 0.0)


def multiply(m: Matrix, n: Matrix) -> Matrix:
    """``m · n``: apply ``n`` first, then ``m``."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + c * b2,
        b * a2 + d * b2,
        a * c2 + c * d2,
        b * c2 + d * d2,
        a * e2 + c * f2 + e,
        b * e2 + d * f2 + f,
    )


def apply(m: Matrix, p: Point) -> Point:
    """Map a point through an affine matrix."""
    a, b, c, d, e, f = m
    return (a * p[0] + c * p[1] + e, b * p[0] + d * p[1] + f)


def width_scale(m: Matrix) -> float:
    """How a transform scales stroke widths: the square root of |det| (exact for similarity)."""
    return math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))
