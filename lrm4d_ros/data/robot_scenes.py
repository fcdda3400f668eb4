"""Robot-like scene content in metres: tables, arms, mobile bases, walls and objects resting on their supports.

Everything is made of the generator's primitives (primitives.py) moved by one `Motion` (motion.py): static parts
are still roots, arms are hinged chains on a fixed base, mobile bases are driving roots whose wheels roll
(`hinge_rate`). The floor is the plane z = 0 (the scene's infinite ground, added by the generator). Layouts:

- "tabletop": a table (slab top on four legs) with 1–N objects on it and an arm on the table or beside it;
- "workcell": one or two arms on the floor or on pedestals, objects on the floor and pedestals, sometimes a
  small table;
- "mobile": one or two mobile bases (a box body on four wheels, the first sometimes carrying an arm) driving
  over the floor among static clutter and sometimes a table.

`build_layout` returns the parts and the workspace (a sphere the cameras should frame); `add_walls` puts walls
around the cameras once the rig is known. Arms: a base fixed on its support, a turret turning about z, 1–3
links hinged about their x axes, an optional wrist roll, and a palm with two fingers that open and close (2–5
revolute joints in the chain, the fingers besides).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .motion import Motion, axis_angle_to_matrix
from .primitives import local_extent
from .textures import Texture, random_texture

ROBOT_LAYOUTS = ("tabletop", "workcell", "mobile")

# Colours of robot arms and mobile bases (industrial orange, white, greys, blue, yellow, black).
ROBOT_PALETTE = ((0.95, 0.45, 0.10), (0.88, 0.88, 0.86), (0.55, 0.56, 0.58), (0.25, 0.26, 0.28),
                 (0.15, 0.30, 0.70), (0.95, 0.80, 0.15), (0.08, 0.08, 0.09))
WOOD, METAL, WALL = (0.62, 0.45, 0.28), (0.6, 0.6, 0.62), (0.8, 0.78, 0.74)
_Z = (0.0, 0.0, 1.0)


def _u(g, lo, hi) -> float:
    return float(lo + (hi - lo) * torch.rand(1, generator=g, dtype=torch.float64))


def _coin(g, p: float) -> bool:
    return _u(g, 0, 1) < p


def _polar(r: float, angle: float) -> tuple[float, float]:
    return r * math.cos(angle), r * math.sin(angle)


def _rot_z(yaw: float) -> Tensor:
    return axis_angle_to_matrix(torch.tensor(_Z, dtype=torch.float64), torch.tensor(yaw, dtype=torch.float64))


def tinted(g, kinds: tuple[str, ...], base, spread: float = 0.15) -> Texture:
    """A random texture of `kinds` whose two colours are `base` RGB made lighter or darker by up to ±spread
    each (one amount for all channels) and shifted in hue by up to ±spread/4 per channel."""
    tex = random_texture(g, kinds)
    base = torch.tensor(base, dtype=torch.float32)
    shade = (torch.rand(2, 1, generator=g) - 0.5) * 2 * spread
    hue = (torch.rand(2, 3, generator=g) - 0.5) * 0.5 * spread
    tex.colors = (base + shade + hue).clamp(0.03, 0.97)
    return tex


def robot_paint(g) -> Texture:
    """A solid colour from ROBOT_PALETTE, slightly varied."""
    return tinted(g, ("solid",), ROBOT_PALETTE[int(torch.randint(len(ROBOT_PALETTE), (1,), generator=g))], 0.04)


def floor_texture(g) -> Texture:
    """Floors: tiles (checkers), concrete (noise), planks (stripes) or paint, 0.25–1.2 m per tile or plank; 70 %
    in muted colours (greys, woods), 30 % in random ones."""
    kind = ("checkers", "checkers", "noise", "stripes", "solid")[int(torch.randint(5, (1,), generator=g))]
    if _coin(g, 0.3):
        tex = random_texture(g, (kind,))
    else:
        tex = tinted(g, (kind,), WOOD if _coin(g, 0.3) else (_u(g, 0.3, 0.75),) * 3, 0.2)
    tex.freq = 1.0 / _u(g, 0.25, 1.2)
    if kind == "stripes":  # planks run along the floor
        tex.axis = torch.nn.functional.normalize(torch.tensor([_u(g, -1, 1), _u(g, -1, 1), 0.0]), dim=0)
    return tex


@dataclass
class Parts:
    """Primitives under construction: kind, shape parameter, texture and role each, and one motion row each
    (the keyword arguments of `add`); `motion()` stacks the rows into a `Motion`."""

    kinds: list[str] = field(default_factory=list)
    params: list[float] = field(default_factory=list)
    textures: list[Texture] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    footprints: list[tuple[float, float, float, float]] = field(default_factory=list)  # (x, y, radius, z) taken

    def place(self, draw, radius: float, z: float, tries: int = 32) -> tuple[float, float] | None:
        """A point (x, y) = draw() whose disc of `radius` at height z overlaps no disc taken at that height,
        taken from now on; None when `tries` draws found none (the caller leaves the thing out)."""
        for _ in range(tries):
            x, y = draw()
            if all(abs(z - fz) > 0.05 or math.hypot(x - fx, y - fy) >= radius + fr
                   for fx, fy, fr, fz in self.footprints):
                self.footprints.append((x, y, radius, z))
                return x, y
        return None

    def add(self, kind: str, role: str, texture: Texture, scale, param: float = 0.0, parent: int = -1,
            centre=(0.0, 0.0, 0.0), R0: Tensor | None = None, vel=(0.0, 0.0, 0.0), spin: float = 0.0,
            joint=(0.0, 0.0, 0.0), offset=(0.0, 0.0, 0.0), hinge_axis=(1.0, 0.0, 0.0), hinge0: float = 0.0,
            hinge_amp: float = 0.0, hinge_freq: float = 0.0, hinge_phase: float = 0.0, hinge_rate: float = 0.0,
            R_shape: Tensor | None = None) -> int:
        """Append a primitive; returns its index. scale: the unit shape's semi-axes (metres); roots use centre,
        R0, vel (metres per window) and spin (radians per window about z); children (parent >= 0) use joint,
        offset, hinge_* (see motion.py)."""
        if parent >= len(self.kinds):
            raise ValueError(f"parent {parent} is not an earlier part (have {len(self.kinds)})")
        f64 = dict(dtype=torch.float64)
        eye = torch.eye(3, **f64)
        self.kinds.append(kind)
        self.params.append(float(param))
        self.textures.append(texture)
        self.roles.append(role)
        self.rows.append(dict(
            parent=parent, c0=torch.tensor(centre, **f64), vel=torch.tensor(vel, **f64), spin=spin,
            R0=eye if R0 is None else R0, joint=torch.tensor(joint, **f64), offset=torch.tensor(offset, **f64),
            hinge_axis=torch.tensor(hinge_axis, **f64), hinge0=hinge0, hinge_amp=hinge_amp, hinge_freq=hinge_freq,
            hinge_phase=hinge_phase, hinge_rate=hinge_rate, R_shape=eye if R_shape is None else R_shape,
            scale0=torch.tensor(scale, **f64)))
        return len(self.kinds) - 1

    def motion(self) -> Motion:
        P = len(self.rows)
        z3, z1 = torch.zeros(P, 3, dtype=torch.float64), torch.zeros(P, dtype=torch.float64)

        def col(key):
            vals = [r[key] for r in self.rows]
            return torch.stack(vals) if isinstance(vals[0], Tensor) else torch.tensor(vals, dtype=torch.float64)

        return Motion(parent=[r["parent"] for r in self.rows], c0=col("c0"), vel=col("vel"), osc_amp=z3.clone(),
                      osc_freq=z1.clone(), osc_phase=z1.clone(), spin_axis=torch.tensor(_Z, dtype=torch.float64)
                      .expand(P, 3).clone(), spin=col("spin"), R0=col("R0"), joint=col("joint"),
                      offset=col("offset"), hinge_axis=col("hinge_axis"), hinge0=col("hinge0"),
                      hinge_amp=col("hinge_amp"), hinge_freq=col("hinge_freq"), hinge_phase=col("hinge_phase"),
                      R_shape=col("R_shape"), scale0=col("scale0"), scale_amp=z3.clone(), scale_freq=z1.clone(),
                      scale_phase=z1.clone(), hinge_rate=col("hinge_rate"))


@dataclass
class Support:
    """A horizontal rectangle things can stand on: centre (x, y), top height z, half sizes (a, b), yaw."""

    x: float
    y: float
    z: float
    a: float
    b: float
    yaw: float

    def point(self, g, margin: float) -> tuple[float, float]:
        """A uniform random (x, y) on the rectangle, `margin` metres in from its edges (or its centre)."""
        la, lb = _u(g, -1, 1) * max(self.a - margin, 0.0), _u(g, -1, 1) * max(self.b - margin, 0.0)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return self.x + c * la - s * lb, self.y + s * la + c * lb


def add_table(parts: Parts, g, x: float, y: float, yaw: float, height=(0.65, 0.9), half=((0.35, 0.8),
              (0.3, 0.5))) -> Support:
    """A slab top on four legs standing on the floor; returns the top as a Support."""
    H = _u(g, *height)
    a, b, th = _u(g, *half[0]), _u(g, *half[1]), _u(g, 0.015, 0.035)
    R = _rot_z(yaw)
    top_colour = WOOD if _coin(g, 0.6) else tuple(torch.rand(3, generator=g).mul(0.8).add(0.1).tolist())
    parts.add("box", "table.top", tinted(g, ("stripes", "noise", "solid"), top_colour, 0.1), (a, b, th),
              centre=(x, y, H - th), R0=R)
    leg_kind = "box" if _coin(g, 0.5) else "cylinder"
    lw, inset = _u(g, 0.02, 0.04), _u(g, 0.04, 0.12)
    leg_tex = tinted(g, ("solid",), METAL if _coin(g, 0.5) else WOOD, 0.15)
    half_h = (H - 2 * th) / 2
    for sa in (-1, 1):
        for sb in (-1, 1):
            off = R @ torch.tensor([sa * (a - inset), sb * (b - inset), 0.0], dtype=torch.float64)
            parts.add(leg_kind, "table.leg", leg_tex, (lw, lw, half_h), centre=(x + off[0], y + off[1], half_h), R0=R)
    return Support(x, y, H, a, b, yaw)


def add_object(parts: Parts, g, support: Support, kinds: tuple[str, ...], texture_kinds: tuple[str, ...],
               size=(0.03, 0.1), move_prob: float = 0.4, margin: float = 0.05) -> int | None:
    """An object of a random kind standing upright (random yaw) on `support`, clear of what stands there
    already (None, nothing added, when there is no room); with `move_prob` it slides to another point of the
    support over the window while turning about z."""
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
    param = {"torus": _u(g, 0.2, 0.45), "capsule": _u(g, 0.3, 1.2)}.get(kind, 0.0)
    fit = 1.0 + param if kind in ("torus", "capsule") else 1.0
    s = torch.tensor([_u(g, *size), _u(g, *size), _u(g, *size)], dtype=torch.float64) / fit
    if kind in ("sphere", "capsule", "torus"):
        s[1] = s[0]  # round in plan, as balls, rings and bottles are
    if kind == "sphere":
        s[2] = s[0]
    extent = s * local_extent(kind, param).double()
    lift, foot = float(extent[2]), float(extent[:2].norm())
    spot = parts.place(lambda: support.point(g, margin + foot), foot, support.z)
    if spot is None:
        return None
    x0, y0 = spot
    vel, spin = (0.0, 0.0, 0.0), 0.0
    if _coin(g, move_prob):
        x1, y1 = support.point(g, margin + foot)
        vel, spin = (x1 - x0, y1 - y0, 0.0), _u(g, -2.0, 2.0)
    return parts.add(kind, "object", random_texture(g, texture_kinds), tuple(s.tolist()), param,
                     centre=(x0, y0, support.z + lift), R0=_rot_z(_u(g, -math.pi, math.pi)), vel=vel, spin=spin)


def add_arm(parts: Parts, g, at=(0.0, 0.0, 0.0), parent: int = -1, scale: float = 1.0) -> float:
    """An arm standing at `at` (world point on a support, or a joint in the parent's link frame when
    parent >= 0); returns its reach in metres (base to outstretched fingertips). `scale` shrinks it for small
    supports."""
    paint, trim = robot_paint(g), robot_paint(g)
    joints = int(torch.randint(2, 6, (1,), generator=g))  # revolute joints of the chain: 2–5
    rb, hb = _u(g, 0.07, 0.14) * scale, _u(g, 0.08, 0.3) * scale
    half_base = (0.0, 0.0, hb / 2)
    if parent < 0:
        base = parts.add("cylinder", "arm.base", trim, (rb, rb, hb / 2), centre=(at[0], at[1], at[2] + hb / 2),
                         R0=_rot_z(_u(g, -math.pi, math.pi)))
    else:
        base = parts.add("cylinder", "arm.base", trim, (rb, rb, hb / 2), parent=parent, joint=at, offset=half_base,
                         hinge_axis=_Z)

    def swing(amp_hi: float) -> dict:
        return dict(hinge_amp=_u(g, 0.1, amp_hi), hinge_freq=_u(g, 0.3, 1.0), hinge_phase=_u(g, 0, 2 * math.pi))

    h1, r1 = _u(g, 0.06, 0.15) * scale, rb * _u(g, 0.7, 0.95)
    prev = parts.add("cylinder", "arm.turret", paint, (r1, r1, h1 / 2), parent=base, joint=half_base,
                     offset=(0.0, 0.0, h1 / 2), hinge_axis=_Z, hinge0=_u(g, -math.pi, math.pi), **swing(1.2))
    prev_half, reach = h1 / 2, hb + h1
    bends = [(_u(g, -0.7, 0.7), 0.5)] + [(_u(g, 0.4, 1.6) * (1 if _coin(g, 0.5) else -1), 0.5)] \
        + [(_u(g, -1.0, 1.0), 0.4)]
    width = _u(g, 0.03, 0.06) * scale
    for i in range(min(joints - 1, 3)):
        length = (_u(g, 0.2, 0.42) if i < 2 else _u(g, 0.06, 0.12)) * scale
        w = width * (1.0 if i < 2 else 0.8)
        kind = ("capsule", "box", "cylinder")[int(torch.randint(3, (1,), generator=g))]
        param = max(length / (2 * w) - 1.0, 0.05) if kind == "capsule" else 0.0
        sz = w if kind == "capsule" else length / 2
        theta0, amp = bends[i]
        prev = parts.add(kind, f"arm.link{i + 1}", paint if i % 2 == 0 else trim, (w, w, sz), param, parent=prev,
                         joint=(0.0, 0.0, prev_half), offset=(0.0, 0.0, length / 2), hinge0=theta0, **swing(amp))
        prev_half, reach = length / 2, reach + length
    pw, pd, ph = _u(g, 0.04, 0.07) * scale, _u(g, 0.015, 0.03) * scale, _u(g, 0.015, 0.03) * scale
    roll = swing(1.0) if joints == 5 else {}
    palm = parts.add("box", "arm.palm", trim, (pw, pd, ph / 2), parent=prev, joint=(0.0, 0.0, prev_half),
                     offset=(0.0, 0.0, ph / 2), hinge_axis=_Z, hinge0=_u(g, -math.pi, math.pi), **roll)
    fl, fw = _u(g, 0.035, 0.07) * scale, _u(g, 0.006, 0.012) * scale
    grip = dict(hinge_freq=_u(g, 0.3, 1.2), hinge_phase=_u(g, 0, 2 * math.pi))
    open0, open_amp = _u(g, 0.0, 0.3), _u(g, 0.0, 0.25)
    for side in (-1.0, 1.0):
        parts.add("box", "arm.finger", paint, (fw, pd * 0.8, fl / 2), parent=palm, joint=(side * pw * 0.8, 0.0, ph / 2),
                  offset=(0.0, 0.0, fl / 2), hinge_axis=(0.0, 1.0, 0.0), hinge0=side * open0,
                  hinge_amp=side * open_amp, **grip)
    return reach + ph + fl


def add_mobile_base(parts: Parts, g, x: float, y: float, heading: float, distance: float,
                    arm: bool = False) -> float:
    """A box body on four wheels driving `distance` metres along `heading` from (x, y) over the window (turning
    slightly, wheels rolling without slip), optionally carrying an arm on its top; returns the body's half
    length."""
    a, b, c = _u(g, 0.2, 0.4), _u(g, 0.15, 0.3), _u(g, 0.06, 0.14)
    rw, ww = _u(g, 0.05, 0.12), _u(g, 0.02, 0.04)
    cz = max(rw + 0.2 * c, c + 0.02)
    direction = (math.cos(heading), math.sin(heading), 0.0)
    body = parts.add("box", "base.body", robot_paint(g), (a, b, c), centre=(x, y, cz), R0=_rot_z(heading),
                     vel=tuple(distance * d for d in direction), spin=_u(g, -0.25, 0.25))
    wheel_tex = tinted(g, ("stripes", "checkers"), (0.12, 0.12, 0.13), 0.1)  # a pattern, so that rolling shows
    axle = axis_angle_to_matrix(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                                torch.tensor(math.pi / 2, dtype=torch.float64))
    for sa in (-1, 1):
        for sb in (-1, 1):
            parts.add("cylinder", "base.wheel", wheel_tex, (rw, rw, ww), parent=body,
                      joint=(sa * a * 0.65, sb * (b + ww + 0.005), rw - cz), hinge_axis=(0.0, 1.0, 0.0),
                      hinge_rate=distance / rw, R_shape=axle)
    if arm:
        add_arm(parts, g, at=(_u(g, -0.3, 0.3) * a, 0.0, c), parent=body, scale=0.8)
    return a


@dataclass
class Layout:
    """Built content: the parts and the workspace the cameras frame (centre (3,) and radius, metres)."""

    parts: Parts
    centre: tuple[float, float, float]
    radius: float


def build_layout(g, layout: str, object_kinds: tuple[str, ...], texture_kinds: tuple[str, ...],
                 num_objects: int) -> Layout:
    """Draw the content of `layout` (see module docstring) with `num_objects` loose objects."""
    parts = Parts()
    if layout == "tabletop":
        yaw = _u(g, -math.pi, math.pi)
        top = add_table(parts, g, 0.0, 0.0, yaw)
        parts.footprints.append((0.0, 0.0, math.hypot(top.a, top.b), 0.0))
        reach = 0.0
        if _coin(g, 0.9):
            if _coin(g, 0.7):  # on the table, near one end
                side = 1 if _coin(g, 0.5) else -1
                lx, ly = side * (top.a - 0.12), _u(g, -0.4, 0.4) * top.b
                c, s = math.cos(yaw), math.sin(yaw)
                at = (c * lx - s * ly, s * lx + c * ly, top.z)
            else:  # beside the table, on the floor or a pedestal
                ang = yaw + (0 if _coin(g, 0.5) else math.pi)
                d = top.a + _u(g, 0.15, 0.3)
                h = _u(g, 0.0, top.z)
                at = (d * math.cos(ang), d * math.sin(ang), h if h > 0.1 else 0.0)
                if h > 0.1:
                    parts.add("box", "pedestal", tinted(g, ("solid", "noise"), METAL, 0.2), (0.14, 0.14, h / 2),
                              centre=(at[0], at[1], h / 2), R0=_rot_z(ang))
            parts.footprints.append((at[0], at[1], 0.2, at[2]))
            reach = add_arm(parts, g, at=at)
        for _ in range(num_objects):
            add_object(parts, g, top, object_kinds, texture_kinds)
        radius = max(math.hypot(top.a, top.b), 0.6 * reach) + 0.1
        return Layout(parts, (0.0, 0.0, top.z + 0.1), radius)
    if layout == "workcell":
        floor = Support(0.0, 0.0, 0.0, 0.9, 0.9, _u(g, -math.pi, math.pi))
        reach = 0.0
        n_arms = 1 if _coin(g, 0.6) else 2
        for i in range(n_arms):
            ang = _u(g, -math.pi, math.pi) if i == 0 else ang + math.pi + _u(g, -0.6, 0.6)
            d = _u(g, 0.0, 0.5) if n_arms == 1 else _u(g, 0.35, 0.6)
            h = _u(g, 0.2, 0.7) if _coin(g, 0.5) else 0.0
            px, py = d * math.cos(ang), d * math.sin(ang)
            # An arm keeps a working circle free on the floor: objects and a table stand outside it.
            parts.footprints.append((px, py, 0.35, 0.0))
            if h > 0:
                half = _u(g, 0.12, 0.22)
                parts.add("box", "pedestal", tinted(g, ("solid", "noise"), METAL, 0.2), (half, half, h / 2),
                          centre=(px, py, h / 2), R0=_rot_z(_u(g, -math.pi, math.pi)))
                parts.footprints.append((px, py, 0.15, h))
            reach = max(reach, add_arm(parts, g, at=(px, py, h)) + h)
        support = floor
        spot = parts.place(lambda: (_u(g, -1.3, 1.3), _u(g, -1.3, 1.3)), 0.64, 0.0) if _coin(g, 0.4) else None
        if spot is not None:
            support = add_table(parts, g, *spot, _u(g, -math.pi, math.pi), half=((0.3, 0.5), (0.25, 0.4)))
        for i in range(num_objects):
            on = support if i % 2 == 0 else floor
            add_object(parts, g, on, object_kinds, texture_kinds, size=(0.04, 0.15) if on is floor else (0.03, 0.1),
                       move_prob=0.25)
        return Layout(parts, (0.0, 0.0, _u(g, 0.3, 0.6)), max(0.9, 0.7 * reach) + 0.2)
    if layout == "mobile":
        floor = Support(0.0, 0.0, 0.0, 1.5, 1.5, _u(g, -math.pi, math.pi))
        n_bases = 1 if _coin(g, 0.6) else 2
        for i in range(n_bases):
            heading, dist = _u(g, -math.pi, math.pi), _u(g, 0.2, 1.2)
            # The path's midpoint lies near the workspace centre; its whole sweep stays clear of other things.
            mx, my = parts.place(lambda: (_u(g, -0.5, 0.5), _u(g, -0.5, 0.5)), 0.5 * dist + 0.5, 0.0) \
                or (_u(g, -0.5, 0.5), _u(g, -0.5, 0.5))  # a second base may cross the first one's path
            add_mobile_base(parts, g, mx - 0.5 * dist * math.cos(heading), my - 0.5 * dist * math.sin(heading),
                            heading, dist, arm=i == 0 and _coin(g, 0.5))
        spot = parts.place(lambda: _polar(1.3, _u(g, -math.pi, math.pi)), 0.72, 0.0) if _coin(g, 0.4) else None
        if spot is not None:
            top = add_table(parts, g, *spot, math.atan2(spot[1], spot[0]) + math.pi / 2,
                            half=((0.3, 0.6), (0.25, 0.4)))
            add_object(parts, g, top, object_kinds, texture_kinds, move_prob=0.0)
        for _ in range(num_objects):
            add_object(parts, g, floor, object_kinds, texture_kinds, size=(0.05, 0.2), move_prob=0.0)
        return Layout(parts, (0.0, 0.0, _u(g, 0.25, 0.45)), _u(g, 1.0, 1.4))
    raise ValueError(f"unknown robot layout {layout!r}; expected one of {ROBOT_LAYOUTS}")


def add_walls(parts: Parts, g, centre, clearance: float, count: int) -> float:
    """`count` (0–4) walls on distinct sides of a square room about `centre` (x, y), rotated at random, its
    half size `clearance` + 0.3–1.5 m (pass the largest horizontal distance of any camera from the centre).
    Walls are 2–3 m high boxes standing on the floor, 5–12 cm thick. Returns the room's half size."""
    if not 0 <= count <= 4:
        raise ValueError(f"a square room has 0 to 4 walls, got {count}")
    half = clearance + _u(g, 0.3, 1.5)
    yaw = _u(g, -math.pi, math.pi)
    height, th = _u(g, 2.0, 3.0), _u(g, 0.025, 0.06)
    tex = tinted(g, ("solid", "noise", "stripes", "checkers"), WALL if _coin(g, 0.6) else
                 tuple(torch.rand(3, generator=g).tolist()), 0.2)
    sides = torch.randperm(4, generator=g)[:count].tolist()
    for k in sides:
        ang = yaw + k * math.pi / 2
        x, y = centre[0] + (half + th) * math.cos(ang), centre[1] + (half + th) * math.sin(ang)
        # Box x along the wall, y through it: rotate by ang + 90°.
        parts.add("box", "wall", tex, (half + 2 * th, th, height / 2), centre=(x, y, height / 2),
                  R0=_rot_z(ang + math.pi / 2))
    return half
