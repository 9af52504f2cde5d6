"""Vehicle generators: car, bus, train, aeroplane, boat, bicycle, motorbike.

Each ``build_<class>(rng) -> (parts, style)`` composes placed primitives in the canonical
frame: length along y with the front (nose, bow, front wheel) at -y, up +z, ground z=0.
Dimensions are nominal metres before normalisation to a unit diagonal.
"""

from __future__ import annotations

import numpy as np

from core.procedural.parts import (
    Style,
    Part,
    box,
    choice,
    coin,
    concat,
    cylinder,
    cylinder_x,
    ellipsoid,
    hull,
    integer,
    plate,
    prism_x,
    ring,
    sphere,
    torus_x,
    uniform,
    wheel,
)



def build_car(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Car: lower body prism, dark glass greenhouse with body-colour roof and pillars, four wheels.

    Style: ``body_type`` sedan (separate boot) / hatchback (cabin to the tail) / suv (taller,
    bigger wheels); ``length``, ``width`` (m); ``body_height`` sill-to-beltline (m);
    ``cabin_height`` beltline-to-roof (m); ``hood_fraction`` nose-to-windscreen-base as a
    fraction of length; ``cabin_fraction`` cabin base length / length; ``windscreen_rake``
    horizontal run of the windscreen (m); ``wheel_radius`` (m); ``clearance`` (m).
    """
    body_type = choice(rng, ["sedan", "hatchback", "suv"])
    suv = body_type == "suv"
    s: Style = {
        "body_type": body_type,
        "length": uniform(rng, 3.6, 5.0),
        "width": uniform(rng, 1.65, 1.95),
        "body_height": uniform(rng, 0.45, 0.62) + (0.12 if suv else 0.0),
        "cabin_height": uniform(rng, 0.38, 0.5) + (0.1 if suv else 0.0),
        "hood_fraction": uniform(rng, 0.24, 0.34) if body_type == "sedan" else uniform(rng, 0.18, 0.28),
        "windscreen_rake": uniform(rng, 0.45, 0.9),
        "wheel_radius": uniform(rng, 0.29, 0.34) + (0.06 if suv else 0.0),
        "clearance": uniform(rng, 0.12, 0.18) + (0.1 if suv else 0.0),
    }
    s["cabin_fraction"] = (uniform(rng, 0.4, 0.5) if body_type == "sedan"
                           else round(1.0 - float(s["hood_fraction"]) - uniform(rng, 0.03, 0.07), 4))
    L, W = float(s["length"]), float(s["width"])
    yf, yr = -L / 2, L / 2
    zb = float(s["clearance"])
    zt = zb + float(s["body_height"])
    zr = zt + float(s["cabin_height"])
    parts: list[Part] = []
    profile = [(yf, zb + 0.1), (yf, zt - 0.14), (yf + 0.45, zt), (yr - 0.2, zt), (yr, zt - 0.1),
               (yr, zb + 0.12), (yr - 0.15, zb), (yf + 0.15, zb)]
    parts.append(("body", prism_x(profile, -W / 2, W / 2)))
    # greenhouse: dark glass volume; the roof slab and pillars are body colour
    yc0 = yf + float(s["hood_fraction"]) * L
    yc1 = min(yc0 + float(s["cabin_fraction"]) * L, yr - 0.05)
    rear_rake = {"sedan": 0.55, "hatchback": 0.25, "suv": 0.12}[body_type] * float(s["cabin_height"]) * 1.6
    ry0 = yc0 + float(s["windscreen_rake"])
    ry1 = max(yc1 - rear_rake, ry0 + 0.4)
    wb, wt = W * 0.92, W * 0.78
    glass = [(sx * wb / 2, yc0, zt) for sx in (-1, 1)] + [(sx * wb / 2, yc1, zt) for sx in (-1, 1)]
    glass += [(sx * wt / 2, ry0, zr) for sx in (-1, 1)] + [(sx * wt / 2, ry1, zr) for sx in (-1, 1)]
    parts.append(("glass_cabin", hull(glass)))
    roof = [(sx * (wt / 2 + 0.01), y, z) for sx in (-1, 1) for y in (ry0 - 0.02, ry1 + 0.02) for z in (zr - 0.01, zr + 0.05)]
    parts.append(("roof", hull(roof)))
    for side, sx in (("left", -1), ("right", 1)):
        parts.append((f"pillar_a_{side}", cylinder((sx * (wb / 2 - 0.03), yc0 + 0.02, zt), (sx * wt / 2, ry0, zr), 0.045, 8)))
        parts.append((f"pillar_c_{side}", cylinder((sx * (wb / 2 - 0.03), yc1 - 0.05, zt), (sx * wt / 2, ry1, zr), 0.07, 8)))
        ym = (yc0 + ry0 + yc1 + ry1) / 4
        parts.append((f"pillar_b_{side}", cylinder((sx * wb / 2, ym + 0.05, zt), (sx * wt / 2, ym, zr), 0.04, 8)))
        parts.append((f"mirror_{side}", box((sx * (W / 2 + 0.07), yc0 + 0.12, zt + 0.06), (0.14, 0.05, 0.09))))
    r = float(s["wheel_radius"])
    y_front, y_rear = yf + max(0.7, 0.19 * L), yr - max(0.65, 0.2 * L)
    for name, y in (("front", y_front), ("rear", y_rear)):
        for side, sx in (("left", -1), ("right", 1)):
            parts += wheel(f"{name}_{side}", (sx * (W / 2 - 0.09), y, r), r, 0.22)
    for side, sx in (("left", -1), ("right", 1)):
        parts.append((f"headlight_{side}", box((sx * (W / 2 - 0.27), yf - 0.005, zt - 0.22), (0.34, 0.05, 0.11))))
        parts.append((f"taillight_{side}", box((sx * (W / 2 - 0.2), yr + 0.005, zt - 0.2), (0.3, 0.05, 0.1))))
    parts.append(("grille", box((0, yf - 0.005, zt - 0.25), (W * 0.32, 0.05, 0.14))))
    parts.append(("bumper_front", box((0, yf + 0.03, zb + 0.1), (W * 0.98, 0.14, 0.14))))
    parts.append(("bumper_rear", box((0, yr - 0.03, zb + 0.12), (W * 0.98, 0.14, 0.14))))
    return parts, s


def build_bus(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Bus: a tall box body with a big windscreen, side window rows, door, 2 or 3 axles.

    Style: ``length``, ``width``, ``height`` (m); ``double_decker`` (two window rows);
    ``n_windows`` side windows per row; ``axles`` 2 or 3; ``wheel_radius`` (m);
    ``windscreen_height`` (m); ``has_roof_unit`` air-conditioning box on the roof.
    """
    double = coin(rng, 0.3)
    s: Style = {
        "length": uniform(rng, 8.5, 13.0),
        "width": uniform(rng, 2.4, 2.6),
        "double_decker": double,
        "height": uniform(rng, 4.0, 4.4) if double else uniform(rng, 2.8, 3.3),
        "n_windows": integer(rng, 4, 8),
        "wheel_radius": uniform(rng, 0.45, 0.55),
        "windscreen_height": uniform(rng, 0.9, 1.4),
        "has_roof_unit": coin(rng, 0.6),
    }
    s["axles"] = 3 if float(s["length"]) > 11.5 and coin(rng, 0.5) else 2
    L, W, H = float(s["length"]), float(s["width"]), float(s["height"])
    yf, yr, zb = -L / 2, L / 2, 0.35
    parts: list[Part] = []
    profile = [(yf, zb), (yf, H - 0.15), (yf + 0.15, H), (yr - 0.12, H), (yr, H - 0.12), (yr, zb)]
    parts.append(("body", prism_x(profile, -W / 2, W / 2)))
    z_ws0 = zb + 0.85
    z_ws1 = z_ws0 + float(s["windscreen_height"])
    parts.append(("windscreen", box((0, yf - 0.01, (z_ws0 + z_ws1) / 2), (W * 0.9, 0.04, z_ws1 - z_ws0))))
    parts.append(("sign", box((0, yf - 0.01, z_ws1 + 0.2), (W * 0.7, 0.04, 0.25))))
    rows = [(zb + 1.05, zb + 1.05 + min(1.0, z_ws1 - zb - 1.05))]
    if double:
        rows = [(zb + 1.05, zb + 1.85), (H - 1.15, H - 0.35)]
        parts.append(("windscreen_upper", box((0, yf - 0.01, H - 0.75), (W * 0.85, 0.04, 0.8))))
    else:
        rows = [(zb + 1.05, H - 0.35)]
    n = int(s["n_windows"])
    y0w, y1w = yf + 1.45, yr - 0.5
    pitch = (y1w - y0w) / n
    for side, sx in (("left", -1), ("right", 1)):
        panes = []
        for z0, z1 in rows:
            for i in range(n):
                yc = y0w + (i + 0.5) * pitch
                panes.append(box((sx * (W / 2 + 0.005), yc, (z0 + z1) / 2), (0.03, max(pitch - 0.14, 0.05), max(z1 - z0, 0.05))))
        parts.append((f"window_{side}", concat(panes)))
        parts.append((f"stripe_{side}", box((sx * (W / 2 + 0.004), 0, zb + 0.45), (0.02, L - 0.1, 0.2))))
    # the door is on the vehicle's right, which is -x when it faces -y
    parts.append(("door", box((-W / 2 - 0.01, yf + 0.75, (zb + 0.15 + rows[0][1]) / 2), (0.03, 0.95, max(rows[0][1] - zb - 0.15, 0.05)))))
    r = float(s["wheel_radius"])
    axle_ys = [yf + 2.2, yr - 2.8] + ([yr - 1.55] if int(s["axles"]) == 3 else [])
    for i, y in enumerate(axle_ys):
        for side, sx in (("left", -1), ("right", 1)):
            parts += wheel(f"{i}_{side}", (sx * (W / 2 - 0.14), y, r), r, 0.3)
    for side, sx in (("left", -1), ("right", 1)):
        parts.append((f"headlight_{side}", box((sx * (W / 2 - 0.3), yf - 0.01, zb + 0.55), (0.35, 0.04, 0.18))))
        parts.append((f"taillight_{side}", box((sx * (W / 2 - 0.15), yr + 0.01, zb + 0.9), (0.18, 0.04, 0.45))))
    parts.append(("bumper_front", box((0, yf - 0.02, zb + 0.15), (W, 0.12, 0.25))))
    parts.append(("bumper_rear", box((0, yr + 0.02, zb + 0.15), (W, 0.12, 0.25))))
    if s["has_roof_unit"]:
        parts.append(("roof_unit", box((0, yr - L * 0.3, H + 0.15), (W * 0.7, L * 0.25, 0.3))))
    return parts, s


def build_train(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Train: 1-3 cars in a row along y, the lead car's nose at -y, bogies underneath.

    Style: ``n_cars``; ``car_length``, ``width``, ``height`` (m); ``nose`` bullet (long
    sloped nose, raked windscreen) or flat (vertical cab front); ``nose_length`` (m, bullet);
    ``n_windows`` side windows per car; ``has_pantograph``; ``has_stripe`` side stripe.
    """
    nose = choice(rng, ["bullet", "flat"])
    s: Style = {
        "n_cars": integer(rng, 1, 3),
        "car_length": uniform(rng, 10.0, 15.0),
        "width": uniform(rng, 2.8, 3.1),
        "height": uniform(rng, 3.6, 4.2),
        "nose": nose,
        "nose_length": uniform(rng, 2.5, 5.0) if nose == "bullet" else 0.0,
        "n_windows": integer(rng, 5, 10),
        "has_pantograph": coin(rng, 0.5),
        "has_stripe": coin(rng, 0.6),
    }
    n, Lc, W, H = int(s["n_cars"]), float(s["car_length"]), float(s["width"]), float(s["height"])
    nl = min(float(s["nose_length"]), 0.5 * Lc)
    gap = 0.8
    total = n * Lc + (n - 1) * gap
    zf, zs = 1.0, H - 0.55
    parts: list[Part] = []

    def section(y: float) -> list[tuple[float, float, float]]:
        pts = [(-W / 2, y, zf), (W / 2, y, zf), (-W / 2, y, zs), (W / 2, y, zs)]
        return pts + [(-W * 0.38, y, H - 0.14), (W * 0.38, y, H - 0.14), (-W * 0.2, y, H), (W * 0.2, y, H)]

    for c in range(n):
        y0 = -total / 2 + c * (Lc + gap)
        y1 = y0 + Lc
        body_start = y0 + nl if c == 0 else y0
        parts.append((f"car{c}_body", hull(section(body_start) + section(y1))))
        if c == 0 and nose == "bullet":
            tip_top = zf + 0.8
            tip = [(sx * W * 0.3, y0, z) for sx in (-1, 1) for z in (zf, tip_top)]
            parts.append(("car0_nose", hull(tip + section(body_start))))
            corners = []
            for t in (0.4, 0.78):
                half = (0.3 + t * (0.2 - 0.3)) * W * 0.8
                corners += [(sx * half, y0 + t * nl, tip_top + t * (H - tip_top)) for sx in (-1, 1)]
            parts.append(("windscreen", plate(corners, (0, -(H - tip_top), nl), 0.01, 0.03)))
            z_light = zf + 0.45
        elif c == 0:
            parts.append(("windscreen", box((0, y0 - 0.01, H - 1.15), (W * 0.75, 0.04, 0.9))))
            z_light = zf + 0.6
        if c == 0:
            for side, sx in (("left", -1), ("right", 1)):
                parts.append((f"headlight_{side}", box((sx * W * 0.25, y0 - 0.01, z_light), (0.3, 0.04, 0.15))))
        # side windows, one part per side per car
        wy0 = body_start + 0.8
        pitch = max((y1 - 0.8 - wy0) / int(s["n_windows"]), 0.1)
        for side, sx in (("left", -1), ("right", 1)):
            panes = [box((sx * (W / 2 + 0.005), wy0 + (i + 0.5) * pitch, zs - 0.85), (0.03, pitch * 0.72, 0.75))
                     for i in range(int(s["n_windows"]))]
            parts.append((f"window_car{c}_{side}", concat(panes)))
            parts.append((f"door_car{c}_{side}", box((sx * (W / 2 + 0.006), y1 - 0.45, (zf + zs) / 2 - 0.2), (0.03, 0.7, max(zs - zf - 0.6, 0.1)))))
            if s["has_stripe"]:
                parts.append((f"stripe_car{c}_{side}", box((sx * (W / 2 + 0.004), (body_start + y1) / 2, zf + 0.45), (0.02, y1 - body_start, 0.3))))
        parts.append((f"skirt_car{c}", box((0, (body_start + y1) / 2, zf - 0.1), (W * 0.9, y1 - body_start - 0.2, 0.2))))
        for b, yb in enumerate((max(body_start, y0 + 1.0) + 1.6, y1 - 2.0)):
            parts.append((f"bogie_car{c}_{b}", box((0, yb, 0.75), (W * 0.62, 2.6, 0.45))))
            wheels = [cylinder_x((sx * 0.72, yb + dy, 0.45), 0.45, 0.14, sections=12) for sx in (-1, 1) for dy in (-0.85, 0.85)]
            parts.append((f"wheel_car{c}_{b}", concat(wheels)))
        if c > 0:
            parts.append((f"coupler_car{c}", box((0, y0 - gap / 2, (zf + zs) / 2), (W * 0.6, gap + 0.2, max(zs - zf - 0.3, 0.1)))))
    if s["has_pantograph"]:
        yp = -total / 2 + nl + Lc * 0.45
        base = box((0, yp, H + 0.08), (1.0, 1.0, 0.16))
        arm1 = cylinder((0, yp - 0.4, H + 0.16), (0, yp + 0.3, H + 0.8), 0.04, 8)
        arm2 = cylinder((0, yp + 0.3, H + 0.8), (0, yp - 0.1, H + 1.3), 0.04, 8)
        bar = cylinder((-0.8, yp - 0.1, H + 1.3), (0.8, yp - 0.1, H + 1.3), 0.04, 8)
        parts.append(("pantograph", concat([base, arm1, arm2, bar])))
    return parts, s


def _wing(x_root: float, x_tip: float, y_le_root: float, sweep_deg: float, chord_root: float,
          chord_tip: float, z_root: float, dihedral_deg: float, thickness: float) -> np.ndarray:
    """Hull points of one tapered, swept wing panel from ``x_root`` to ``x_tip`` (signed)."""
    span = abs(x_tip - x_root)
    y_le_tip = y_le_root + np.tan(np.deg2rad(sweep_deg)) * span
    z_tip = z_root + np.tan(np.deg2rad(dihedral_deg)) * span
    pts = []
    for x, y_le, c, z, t in ((x_root, y_le_root, chord_root, z_root, thickness),
                             (x_tip, y_le_tip, chord_tip, z_tip, thickness * chord_tip / chord_root)):
        pts += [(x, y_le, z), (x, y_le + 0.3 * c, z + t / 2), (x, y_le + 0.3 * c, z - t / 2), (x, y_le + c, z)]
    return np.array(pts)


def build_aeroplane(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Aeroplane: fuselage with nose and upswept tail cone, swept wings, tailplane, fin, engines.

    Style: ``fuselage_length`` (m); ``fuselage_radius`` as a fraction of it; ``wingspan``
    as a multiple of the fuselage length; ``sweep_deg``; ``wing_position`` wing root
    leading edge as a fraction of the length from the nose; ``wing_height`` low/high;
    ``dihedral_deg``; ``engines`` wing_2 / wing_4 (nacelles under the wings), rear_2
    (on the tail), prop (nose propeller); ``tail`` conventional / t_tail.
    """
    engines = choice(rng, ["wing_2", "wing_4", "rear_2", "prop"], p=[0.45, 0.2, 0.15, 0.2])
    s: Style = {
        "fuselage_length": uniform(rng, 20.0, 45.0),
        "fuselage_radius": uniform(rng, 0.045, 0.065),
        "wingspan": uniform(rng, 0.8, 1.15),
        "sweep_deg": uniform(rng, 0.0, 8.0) if engines == "prop" else uniform(rng, 15.0, 35.0),
        "wing_position": uniform(rng, 0.33, 0.45),
        "wing_height": "high" if engines == "prop" and coin(rng, 0.7) else choice(rng, ["low", "high"], p=[0.8, 0.2]),
        "dihedral_deg": uniform(rng, 0.0, 6.0),
        "engines": engines,
        "tail": "t_tail" if engines == "rear_2" else choice(rng, ["conventional", "t_tail"], p=[0.8, 0.2]),
    }
    Lf = float(s["fuselage_length"])
    R = Lf * float(s["fuselage_radius"])
    yf, yr = -Lf / 2, Lf / 2
    nl, tl = 2.2 * R, 4.5 * R
    parts: list[Part] = []
    nose = [ring(yf + nl * t, R * max(np.sqrt(t * (2 - t)), 0.08), R * max(np.sqrt(t * (2 - t)), 0.08), -0.25 * R * (1 - t))
            for t in (0.0, 0.1, 0.3, 0.6, 1.0)]
    parts.append(("nose", hull(np.concatenate(nose))))
    parts.append(("fuselage", cylinder((0, yf + nl, 0), (0, yr - tl, 0), R)))
    tail = [ring(yr - tl + tl * t, R * (1 - 0.8 * t), R * (1 - 0.75 * t), 0.7 * R * t) for t in (0.0, 0.5, 1.0)]
    parts.append(("tail_cone", hull(np.concatenate(tail))))
    parts.append(("cockpit", ellipsoid((0, yf + nl * 0.8, R * 0.55), (R * 0.6, R * 0.45, R * 0.28), 1)))
    for side, sx in (("left", -1), ("right", 1)):
        parts.append((f"window_{side}", box((sx * R * 0.955, (yf + nl + yr - tl) / 2, 0.3 * R), (0.06 * R, max(Lf - nl - tl - 2 * R, 0.1 * R), 0.12 * R))))
    # wings
    span2 = Lf * float(s["wingspan"]) / 2
    c_root = Lf * 0.17 if engines != "prop" else Lf * 0.13
    c_tip = c_root * (0.35 if engines != "prop" else 0.7)
    y_le = yf + float(s["wing_position"]) * Lf
    zw = -0.55 * R if s["wing_height"] == "low" else 0.8 * R
    sweep, dih = float(s["sweep_deg"]), float(s["dihedral_deg"])
    for side, sx in (("left", -1), ("right", 1)):
        parts.append((f"wing_{side}", hull(_wing(sx * 0.5 * R, sx * span2, y_le, sweep, c_root, c_tip, zw, dih, 0.12 * c_root))))
    # tail surfaces
    fin_root = tl * 0.85
    fin_h = 3.2 * R
    fin_y0 = yr - fin_root - 0.05 * tl
    fin_sweep = fin_root * 0.6
    fin_pts = [(x, y, z) for x in (-0.12 * R, 0.12 * R)
               for y, z in ((fin_y0, 0.4 * R), (yr, 0.8 * R), (fin_y0 + fin_sweep, fin_h), (fin_y0 + fin_sweep + fin_root * 0.45, fin_h))]
    parts.append(("fin", hull(fin_pts)))
    h_span2 = span2 * 0.33
    h_root = c_root * 0.5
    if s["tail"] == "t_tail":
        z_h, y_h = fin_h - 0.1 * R, fin_y0 + fin_sweep
    else:
        z_h, y_h = 0.45 * R, yr - tl * 0.85
    for side, sx in (("left", -1), ("right", 1)):
        x0 = sx * (0.1 * R if s["tail"] == "t_tail" else 0.4 * R)
        parts.append((f"stabiliser_{side}", hull(_wing(x0, sx * h_span2, y_h, sweep + 5, h_root, h_root * 0.45, z_h, 3.0, 0.1 * h_root))))
    # engines
    er, el = 0.55 * R, 2.6 * R
    nacelles: list[tuple[float, float, float]] = []
    if engines in ("wing_2", "wing_4"):
        fractions = (0.33,) if engines == "wing_2" else (0.28, 0.55)
        for f in fractions:
            x = f * span2
            y_le_x = y_le + np.tan(np.deg2rad(sweep)) * (x - 0.5 * R)
            z_w = zw + np.tan(np.deg2rad(dih)) * (x - 0.5 * R)
            for sx in (-1, 1):
                nacelles.append((sx * x, y_le_x - 0.45 * el, z_w - 1.15 * er))
    elif engines == "rear_2":
        for sx in (-1, 1):
            nacelles.append((sx * (R + 0.9 * er), yr - tl - 0.2 * el, 0.35 * R))
    for i, (x, y, z) in enumerate(nacelles):
        parts.append((f"engine_{i}", cylinder((x, y - el / 2, z), (x, y + el / 2, z), er)))
        parts.append((f"intake_{i}", cylinder((x, y - el / 2 - 0.02 * R, z), (x, y - el / 2 + 0.02, z), er * 0.8)))
        if engines != "rear_2":
            parts.append((f"pylon_{i}", box((x, y + 0.1 * el, z + 0.8 * er), (0.12 * er, el * 0.5, 0.8 * er))))
        else:
            parts.append((f"pylon_{i}", box((x / 2, y, z), (abs(x), el * 0.4, 0.12 * er))))
    if engines == "prop":
        parts.append(("spinner", ellipsoid((0, yf - 0.1 * R, -0.25 * R), (0.3 * R, 0.35 * R, 0.3 * R), 1)))
        blades = []
        for k in range(3):
            a = 2 * np.pi * k / 3 + 0.3
            d = np.array([np.cos(a), 0.0, np.sin(a)])
            c = np.array([0.0, yf - 0.15 * R, -0.25 * R])
            blades.append(cylinder(c, c + 1.8 * R * d, 0.09 * R, 6))
        parts.append(("propeller", concat(blades)))
    return parts, s


def build_boat(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Boat: a two-tone hull (bow at -y), deck, and either a motor-yacht cabin or mast and sails.

    Style: ``boat_type`` motor / sail; ``length`` (m); ``beam`` as a fraction of length;
    ``freeboard`` hull depth as a fraction of the beam; ``cabin_fraction`` cabin length /
    boat length; ``cabin_height`` (m); ``has_flybridge`` (motor); ``mast_height`` as a
    multiple of length (sail; 0 for motor); ``has_jib`` foresail (sail).
    """
    boat_type = choice(rng, ["motor", "sail"])
    sail = boat_type == "sail"
    s: Style = {
        "boat_type": boat_type,
        "length": uniform(rng, 6.0, 14.0),
        "beam": uniform(rng, 0.28, 0.38),
        "freeboard": uniform(rng, 0.3, 0.5),
        "cabin_fraction": uniform(rng, 0.2, 0.3) if sail else uniform(rng, 0.3, 0.45),
        "cabin_height": uniform(rng, 0.4, 0.7) if sail else uniform(rng, 0.9, 1.5),
        "has_flybridge": (not sail) and coin(rng, 0.5),
        "mast_height": uniform(rng, 1.0, 1.4) if sail else 0.0,
        "has_jib": sail and coin(rng, 0.7),
    }
    L = float(s["length"])
    B = L * float(s["beam"])
    D = B * float(s["freeboard"])
    parts: list[Part] = []
    deck_xy = [(0.0, -0.5), (0.3, -0.33), (0.45, -0.15), (0.5, 0.1), (0.42, 0.5)]
    keel_xy = [(0.0, -0.36), (0.1, -0.28), (0.16, -0.12), (0.18, 0.1), (0.15, 0.47)]

    def outline(t: float, z: float, grow: float = 1.0) -> list[tuple[float, float, float]]:
        pts = []
        for (dx, dy), (kx, ky) in zip(deck_xy, keel_xy):
            x = (kx + t * (dx - kx)) * B * grow
            y = (ky + t * (dy - ky)) * L
            pts += [(x, y, z), (-x, y, z)]
        return pts

    keel_z = [0.35 * D, 0.1 * D, 0.0, 0.0, 0.15 * D]
    keel = [(sx * kx * B, ky * L, kz) for (kx, ky), kz in zip(keel_xy, keel_z) for sx in (-1, 1)]
    t_mid = 0.4
    mid = outline(t_mid, t_mid * D + (1 - t_mid) * 0.1 * D)
    parts.append(("topsides", hull(outline(1.0, D) + mid)))
    parts.append(("bottom", hull(mid + keel)))
    parts.append(("stripe", hull(outline(0.8, 0.8 * D, 1.02) + outline(0.88, 0.88 * D, 1.02))))
    deck = [(x * 0.95, y * 0.97, z) for x, y, z in outline(1.0, D)]
    parts.append(("deck", hull(deck + [(x, y, z + 0.04) for x, y, z in deck])))
    ch = float(s["cabin_height"])
    cl = float(s["cabin_fraction"]) * L
    yc0 = -0.12 * L if not sail else -0.05 * L
    yc1 = yc0 + cl
    cw = 0.72 * B
    rake = 0.7 * ch
    cabin = [(sx * cw / 2, y, D) for sx in (-1, 1) for y in (yc0, yc1)]
    cabin += [(sx * cw * 0.45, y, D + ch) for sx in (-1, 1) for y in (yc0 + rake, yc1 - 0.05 * L)]
    parts.append(("cabin", hull(cabin)))
    ws = [(sx * cw * 0.4, yc0 + rake * t, D + ch * t) for t in (0.3, 0.85) for sx in (-1, 1)]
    parts.append(("windscreen", plate(ws, (0, -ch, rake), 0.01, 0.03)))
    for side, sx in (("left", -1), ("right", 1)):
        zw = D + 0.55 * ch
        xw = sx * (cw / 2 - (cw / 2 - cw * 0.45) * 0.55)
        parts.append((f"window_{side}", box((xw + sx * 0.02, (yc0 + rake + yc1) / 2, zw), (0.04, max((yc1 - yc0 - rake) * 0.7, 0.05), 0.25 * ch))))
    if s["has_flybridge"]:
        yb = yc0 + rake + 0.3
        parts.append(("flybridge", box((0, (yb + yc1) / 2, D + ch + 0.25), (cw * 0.8, max((yc1 - yb) * 0.8, 0.05), 0.5))))
        parts.append(("windscreen_flybridge", box((0, yb + 0.1 * (yc1 - yb) - 0.02, D + ch + 0.65), (cw * 0.7, 0.04, 0.3))))
    if sail:
        mh = float(s["mast_height"]) * L
        ym = yc0 - 0.05 * L
        parts.append(("mast", cylinder((0, ym, D), (0, ym, D + mh), 0.012 * L, 8)))
        zboom = D + ch + 0.6
        yboom = ym + 0.45 * L
        parts.append(("boom", cylinder((0, ym, zboom), (0, yboom, zboom), 0.01 * L, 8)))
        sail_pts = [(x, y, z) for x in (-0.02, 0.02) for y, z in ((ym + 0.05, zboom + 0.1), (ym + 0.05, D + mh * 0.97), (yboom, zboom + 0.1))]
        parts.append(("sail_main", hull(sail_pts)))
        if s["has_jib"]:
            jib = [(x, y, z) for x in (-0.02, 0.02) for y, z in ((ym - 0.05, D + mh * 0.85), (-0.46 * L, D + 0.3), (ym - 0.1 * L, D + 0.5))]
            parts.append(("jib", hull(jib)))
    else:
        parts.append(("engine", box((0, 0.5 * L + 0.25, D * 0.6), (0.5, 0.5, D * 0.9))))
    return parts, s


def build_bicycle(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Bicycle: two spoked wheels, tubular frame, fork, saddle, handlebar, cranks; front wheel at -y.

    Style: ``wheel_radius`` (m); ``wheelbase`` (m); ``frame_size`` seat-tube length (m);
    ``frame_style`` diamond (horizontal top tube) / step_through (low sloping tube);
    ``handlebar`` flat / drop / cruiser (swept back); ``n_spokes`` per wheel;
    ``has_basket`` front basket; ``tyre_width`` (m).
    """
    s: Style = {
        "wheel_radius": uniform(rng, 0.3, 0.36),
        "wheelbase": uniform(rng, 0.95, 1.12),
        "frame_size": uniform(rng, 0.45, 0.6),
        "frame_style": choice(rng, ["diamond", "step_through"], p=[0.7, 0.3]),
        "handlebar": choice(rng, ["flat", "drop", "cruiser"]),
        "n_spokes": integer(rng, 6, 12),
        "has_basket": coin(rng, 0.25),
        "tyre_width": uniform(rng, 0.018, 0.035),
    }
    r, wb = float(s["wheel_radius"]), float(s["wheelbase"])
    tw = min(float(s["tyre_width"]), 0.3 * r)
    tube = 0.017
    fa = np.array([0.0, -wb / 2, r])          # front axle
    ra = np.array([0.0, wb / 2, r])           # rear axle
    bb = np.array([0.0, wb / 2 - 0.42, r * 0.8])  # bottom bracket
    seat_dir = np.array([0.0, np.cos(np.deg2rad(73)), np.sin(np.deg2rad(73))])
    st = bb + seat_dir * float(s["frame_size"])
    head_dir = np.array([0.0, np.cos(np.deg2rad(71)), np.sin(np.deg2rad(71))])
    hb = fa + head_dir * (r + 0.1)
    ht = hb + head_dir * 0.16
    parts: list[Part] = []
    for name, c in (("front", fa), ("rear", ra)):
        parts.append((f"tyre_{name}", torus_x(c, r - tw, tw)))
        spokes = []
        for k in range(int(s["n_spokes"])):
            a = np.pi * k / int(s["n_spokes"])
            d = np.array([0.0, np.cos(a), np.sin(a)]) * (r - 1.6 * tw)
            spokes.append(cylinder(c - d, c + d, 0.003, 4))
        parts.append((f"spoke_{name}", concat(spokes)))
        parts.append((f"hub_{name}", cylinder_x(c, 0.025, 0.1, 8)))
    frame = [cylinder(bb, st, tube, 8), cylinder(hb, ht, tube * 1.3, 8)]
    if s["frame_style"] == "diamond":
        frame += [cylinder(ht - head_dir * 0.02, st - seat_dir * 0.03, tube, 8), cylinder(hb, bb, tube * 1.2, 8)]
    else:
        low = bb + np.array([0.0, -0.18, 0.08])
        frame += [cylinder(ht - head_dir * 0.05, low, tube * 1.3, 8), cylinder(low, bb, tube * 1.3, 8)]
    for sx in (-1, 1):
        off = np.array([sx * 0.04, 0.0, 0.0])
        frame += [cylinder(bb + off * 0.5, ra + off, tube * 0.7, 6), cylinder(st - seat_dir * 0.04 + off * 0.3, ra + off, tube * 0.7, 6)]
    parts.append(("frame", concat(frame)))
    parts.append(("fork", concat([cylinder(hb + [sx * 0.01, 0, 0], fa + [sx * 0.045, 0, 0], tube * 0.8, 6) for sx in (-1, 1)])))
    post_top = st + seat_dir * 0.12
    parts.append(("seatpost", cylinder(st, post_top, tube * 0.7, 8)))
    parts.append(("saddle", hull([(x, post_top[1] + dy, post_top[2] + dz) for x, dy, dz in
                                  ((-0.08, 0.08, 0.0), (0.08, 0.08, 0.0), (-0.08, 0.08, 0.05), (0.08, 0.08, 0.05),
                                   (-0.02, -0.17, 0.02), (0.02, -0.17, 0.02), (-0.02, -0.17, 0.05), (0.02, -0.17, 0.05))])))
    stem_top = ht + head_dir * 0.06 + np.array([0.0, -0.06, 0.02])
    parts.append(("stem", cylinder(ht, stem_top, tube, 8)))
    hw = 0.3 if s["handlebar"] != "drop" else 0.22
    bars = [cylinder(stem_top - [hw, 0, 0], stem_top + [hw, 0, 0], 0.012, 8)]
    grips = []
    if s["handlebar"] == "drop":
        for sx in (-1, 1):
            p0 = stem_top + [sx * hw, 0, 0]
            p1 = p0 + [0, -0.1, -0.05]
            p2 = p1 + [0, 0.06, -0.1]
            bars += [cylinder(p0, p1, 0.012, 6), cylinder(p1, p2, 0.012, 6)]
    elif s["handlebar"] == "cruiser":
        for sx in (-1, 1):
            p0 = stem_top + [sx * hw, 0, 0]
            p1 = p0 + [sx * 0.03, 0.18, 0.04]
            bars.append(cylinder(p0, p1, 0.012, 6))
            grips.append(cylinder(p1 - [0, 0.09, 0.02], p1, 0.016, 8))
    if not grips:
        grips = [cylinder(stem_top + [sx * (hw - 0.1), 0, 0], stem_top + [sx * hw, 0, 0], 0.016, 8) for sx in (-1, 1)]
    parts.append(("handlebar", concat(bars)))
    parts.append(("grip", concat(grips)))
    parts.append(("chainring", cylinder_x(bb + [0.05, 0, 0], 0.1, 0.008, 16)))
    crank_d = np.array([0.0, 0.12, -0.12]) / np.sqrt(2) * 1.2
    cranks = [cylinder(bb + [0.07, 0, 0], bb + [0.07, 0, 0] + crank_d, 0.01, 6),
              cylinder(bb - [0.07, 0, 0], bb - [0.07, 0, 0] - crank_d, 0.01, 6)]
    parts.append(("crank", concat(cranks)))
    parts.append(("pedal", concat([box(bb + [0.12, 0, 0] + crank_d, (0.09, 0.06, 0.02)),
                                   box(bb - [0.12, 0, 0] - crank_d, (0.09, 0.06, 0.02))])))
    if s["has_basket"]:
        parts.append(("basket", box(ht + [0, -0.2, -0.02], (0.32, 0.24, 0.2))))
    return parts, s


def build_motorbike(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Motorbike: fat tyres, engine block, fuel tank, seat, front fork, headlight, exhaust.

    Style: ``bike_type`` sport (fairing, low bars) / cruiser (low seat, high bars, big
    headlight) / dirt (tall, high fenders); ``wheel_radius`` (m); ``wheelbase`` (m);
    ``seat_height`` (m); ``tank_length`` (m); ``n_exhausts`` 1 or 2; ``has_windscreen``.
    """
    kind = choice(rng, ["sport", "cruiser", "dirt"])
    s: Style = {
        "bike_type": kind,
        "wheel_radius": uniform(rng, 0.3, 0.34) + (0.05 if kind == "dirt" else 0.0),
        "wheelbase": uniform(rng, 1.35, 1.6) + (0.1 if kind == "cruiser" else 0.0),
        "seat_height": {"sport": uniform(rng, 0.78, 0.85), "cruiser": uniform(rng, 0.65, 0.72),
                        "dirt": uniform(rng, 0.88, 0.96)}[kind],
        "tank_length": uniform(rng, 0.4, 0.6),
        "n_exhausts": integer(rng, 1, 2),
        "has_windscreen": kind == "sport" or (kind == "cruiser" and coin(rng, 0.5)),
    }
    r, wb, sh = float(s["wheel_radius"]), float(s["wheelbase"]), float(s["seat_height"])
    tyre = min(0.06 if kind != "dirt" else 0.045, 0.3 * r)
    fa = np.array([0.0, -wb / 2, r])
    ra = np.array([0.0, wb / 2, r])
    parts: list[Part] = []
    for name, c in (("front", fa), ("rear", ra)):
        parts.append((f"tyre_{name}", torus_x(c, r - tyre, tyre)))
        parts.append((f"rim_{name}", cylinder_x(c, r - tyre * 1.3, 0.04, 16)))
        parts.append((f"hub_{name}", cylinder_x(c, 0.06, 0.14, 8)))
    head_dir = np.array([0.0, np.cos(np.deg2rad(62 if kind == "cruiser" else 67)), np.sin(np.deg2rad(62 if kind == "cruiser" else 67))])
    head = fa + head_dir * (sh + 0.15 - r) / head_dir[2]
    parts.append(("fork", concat([cylinder(fa + [sx * 0.09, 0, 0], head + [sx * 0.08, 0, 0], 0.025, 8) for sx in (-1, 1)])))
    # engine between the wheels, low
    eng_c = np.array([0.0, 0.0, r * 0.95])
    parts.append(("engine", box(eng_c, (0.26, 0.4, 0.3))))
    parts.append(("engine_cylinder", cylinder(eng_c + [0, -0.08, 0.1], eng_c + [0, -0.2, 0.35], 0.1, 10)))
    tl = float(s["tank_length"])
    tank_front = head[1] + 0.08
    tank_z0, tank_z1 = sh - 0.12, sh + 0.12
    tank = [(x, y, z) for x, y, z in ((-0.12, tank_front, tank_z1 - 0.02), (0.12, tank_front, tank_z1 - 0.02),
                                      (-0.15, tank_front + 0.1, tank_z0 - 0.05), (0.15, tank_front + 0.1, tank_z0 - 0.05),
                                      (-0.14, tank_front + tl, tank_z1), (0.14, tank_front + tl, tank_z1),
                                      (-0.1, tank_front + tl, tank_z0), (0.1, tank_front + tl, tank_z0))]
    parts.append(("tank", hull(tank)))
    seat_y0 = tank_front + tl
    seat_len = 0.5 if kind != "cruiser" else 0.4
    parts.append(("seat", box((0, seat_y0 + seat_len / 2, sh), (0.26, seat_len, 0.09))))
    tail_end = ra[1] + 0.05
    tail = [(x, y, z) for x in (-0.1, 0.1) for y, z in ((seat_y0, sh - 0.15), (seat_y0, sh - 0.05),
                                                         (tail_end, sh + 0.05), (tail_end, sh - 0.05))]
    parts.append(("tail", hull(tail)))
    parts.append(("taillight", box((0, tail_end + 0.01, sh), (0.12, 0.03, 0.05))))
    parts.append(("frame", concat([cylinder(head, eng_c + [0, 0.05, 0.15], 0.03, 8),
                                   cylinder(head, (0, seat_y0, sh - 0.12), 0.03, 8)])))
    parts.append(("swingarm", concat([cylinder(eng_c + [sx * 0.1, 0.15, -0.05], ra + [sx * 0.08, 0, 0], 0.025, 8) for sx in (-1, 1)])))
    bar_rise = {"sport": 0.02, "cruiser": 0.3, "dirt": 0.12}[kind]
    bar_c = head + head_dir * 0.05 + [0, 0.05 if kind != "cruiser" else 0.12, bar_rise]
    bw = 0.32 if kind != "sport" else 0.26
    parts.append(("handlebar", concat([cylinder(head, bar_c, 0.015, 6), cylinder(bar_c - [bw, 0, 0], bar_c + [bw, 0, 0], 0.015, 8)])))
    light_c = head - head_dir * 0.12 + [0, -0.08, 0]
    light_r = 0.1 if kind == "cruiser" else 0.07
    parts.append(("headlight", cylinder(light_c, light_c + [0, -0.06, 0], light_r, 12)))
    if kind == "sport":
        fairing = [(x, y, z) for x, y, z in ((-0.2, light_c[1] + 0.15, light_c[2] - 0.35), (0.2, light_c[1] + 0.15, light_c[2] - 0.35),
                                             (-0.12, light_c[1] - 0.02, light_c[2] - 0.12), (0.12, light_c[1] - 0.02, light_c[2] - 0.12),
                                             (-0.14, light_c[1] + 0.05, light_c[2] + 0.12), (0.14, light_c[1] + 0.05, light_c[2] + 0.12),
                                             (-0.2, light_c[1] + 0.35, light_c[2] + 0.05), (0.2, light_c[1] + 0.35, light_c[2] + 0.05),
                                             (-0.2, light_c[1] + 0.35, light_c[2] - 0.4), (0.2, light_c[1] + 0.35, light_c[2] - 0.4))]
        parts.append(("fairing", hull(fairing)))
    if s["has_windscreen"]:
        ws_c = light_c + [0, 0.12, 0.2]
        parts.append(("windscreen", box(ws_c, (0.3, 0.02, 0.2))))
    fender_z = fa[2] + r + 0.03 if kind != "dirt" else fa[2] + r + 0.12
    parts.append(("fender_front", box((0, fa[1] - 0.05, fender_z), (0.16, 0.45, 0.03))))
    mirrors = []
    for sx in (-1, 1):
        root = bar_c + [sx * (bw - 0.06), 0.0, 0.0]
        mirrors += [cylinder(root, root + [sx * 0.04, -0.02, 0.1], 0.008, 6), sphere(root + [sx * 0.05, -0.02, 0.12], 0.035, 1)]
    parts.append(("mirror", concat(mirrors)))
    pipes = []
    for i in range(int(s["n_exhausts"])):
        sx = 1 if i == 0 else -1
        p0 = eng_c + [sx * 0.16, -0.1, -0.1]
        p1 = np.array([sx * 0.18, ra[1] + 0.05, r * (0.75 if kind != "dirt" else 1.5)])
        pipes.append(cylinder(p0, p1, 0.04, 10))
    parts.append(("exhaust", concat(pipes)))
    return parts, s
