"""Object generators: bottle, tvmonitor.

Canonical frame: up +z, resting on z=0; the monitor's screen faces -y. Dimensions are
nominal metres.
"""

from __future__ import annotations

import numpy as np

from core.procedural.parts import (
    Style,
    Part,
    box,
    box_between,
    choice,
    coin,
    concat,
    cylinder,
    cylinder_z,
    hull,
    revolve_z,
    uniform,
)



def build_bottle(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Bottle: a surface of revolution (body, shoulder, neck, lip), label band and cap.

    Style: ``shape`` wine (long neck, round shoulder) / water (wide, short neck) / beer
    (short, long tapering neck); ``height`` (m); ``radius`` body radius / height;
    ``shoulder`` where the shoulder starts, as a fraction of the height; ``neck_radius``
    neck radius / body radius; ``neck_length`` as a fraction of the height;
    ``shoulder_curve`` exponent of the shoulder curve (< 1 rounder, > 1 more conical);
    ``has_label``; ``label_height`` as a fraction of the height.
    """
    shape = choice(rng, ["wine", "water", "beer"])
    ranges = {
        "wine": dict(height=(0.28, 0.34), radius=(0.1, 0.13), shoulder=(0.58, 0.68), neck_radius=(0.3, 0.38), neck_length=(0.2, 0.26)),
        "water": dict(height=(0.2, 0.33), radius=(0.13, 0.19), shoulder=(0.55, 0.72), neck_radius=(0.35, 0.48), neck_length=(0.06, 0.1)),
        "beer": dict(height=(0.2, 0.25), radius=(0.12, 0.15), shoulder=(0.45, 0.58), neck_radius=(0.33, 0.42), neck_length=(0.12, 0.2)),
    }[shape]
    s: Style = {"shape": shape}
    for key, (lo, hi) in ranges.items():
        s[key] = uniform(rng, lo, hi)
    s["shoulder_curve"] = uniform(rng, 0.4, 0.8) if shape == "wine" else uniform(rng, 0.8, 2.0)
    s["has_label"] = coin(rng, 0.75)
    s["label_height"] = uniform(rng, 0.2, 0.4)
    H = float(s["height"])
    R = H * float(s["radius"])
    rn = R * float(s["neck_radius"])
    zs = H * float(s["shoulder"])
    zn = H * (1 - float(s["neck_length"]))
    zn = max(zn, zs + 0.05 * H)
    p = float(s["shoulder_curve"])
    profile = [(0.0, 0.0), (R * 0.9, 0.0), (R, 0.015 * H), (R, zs)]
    for k in range(1, 7):
        t = k / 7
        profile.append((rn + (R - rn) * np.cos(t * np.pi / 2) ** p, zs + (zn - zs) * t))
    lip = rn * 1.15
    profile += [(rn, zn), (rn, H - 0.025 * H), (lip, H - 0.02 * H), (lip, H), (0.0, H)]
    parts: list[Part] = [("body", revolve_z(profile, sections=20))]
    if s["has_label"]:
        lh = H * float(s["label_height"])
        zc = min(zs - lh / 2 - 0.02 * H, 0.1 * H + lh / 2 + 0.15 * H)
        zc = max(zc, lh / 2 + 0.03 * H)
        parts.append(("label", cylinder_z((0, 0, zc), R * 1.012, lh, 20)))
    cap_h = {"wine": 0.12, "water": 0.05, "beer": 0.025}[shape] * H
    parts.append(("cap", cylinder_z((0, 0, H - cap_h / 2 + 0.002 * H), lip * 1.08, cap_h, 16)))
    return parts, s


def build_tvmonitor(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """TV / monitor: a housing with the dark screen on its -y face, on a stand.

    Style: ``kind`` flat (thin panel) / crt (deep tapered back); ``diagonal`` of the screen
    (m); ``aspect`` 16:9 / 16:10 / 4:3; ``bezel`` border width (m); ``depth`` housing depth
    (m); ``stand`` pedestal (neck and base plate) / feet (two splayed feet) / none (the
    housing's own base, CRT) ; ``screen_elevation`` gap between stand base and housing (m).
    """
    kind = choice(rng, ["flat", "crt"], p=[0.75, 0.25])
    crt = kind == "crt"
    diag = uniform(rng, 0.35, 0.6) if crt else uniform(rng, 0.5, 1.3)
    s: Style = {
        "kind": kind,
        "diagonal": diag,
        "aspect": "4:3" if crt else choice(rng, ["16:9", "16:10", "4:3"], p=[0.6, 0.25, 0.15]),
        "bezel": uniform(rng, 0.03, 0.06) if crt else uniform(rng, 0.008, 0.04),
        "depth": round(diag * uniform(rng, 0.7, 0.9), 4) if crt else uniform(rng, 0.03, 0.08),
        "stand": "none" if crt else choice(rng, ["pedestal", "feet"], p=[0.65, 0.35]),
        "screen_elevation": uniform(rng, 0.0, 0.02) if crt else uniform(rng, 0.05, 0.22),
    }
    aw, ah = (float(v) for v in str(s["aspect"]).split(":"))
    w = diag * aw / np.hypot(aw, ah)
    h = diag * ah / np.hypot(aw, ah)
    b, d, elev = float(s["bezel"]), float(s["depth"]), float(s["screen_elevation"])
    W, Hh = w + 2 * b, h + 2 * b
    z0 = elev + (0.02 if s["stand"] == "pedestal" else 0.0)
    zc = z0 + Hh / 2
    parts: list[Part] = []
    if crt:
        front = 0.08
        parts.append(("housing", box_between((-W / 2, -front, z0), (W / 2, 0.0, z0 + Hh))))
        back = [(sx * W / 2 * 0.95, 0.0, z) for sx in (-1, 1) for z in (z0, z0 + Hh * 0.97)]
        back += [(sx * W / 2 * 0.5, d - front, z) for sx in (-1, 1) for z in (z0, z0 + Hh * 0.6)]
        parts.append(("housing_back", hull(back)))
        y_front = -front
    else:
        parts.append(("housing", box_between((-W / 2, -d / 2, z0), (W / 2, d / 2, z0 + Hh))))
        parts.append(("housing_back", box_between((-W * 0.3, d / 2, zc - Hh * 0.3), (W * 0.3, d / 2 + d * 0.6, zc + Hh * 0.25))))
        y_front = -d / 2
    parts.append(("screen", box((0, y_front - 0.003, zc), (w, 0.008, h))))
    parts.append(("led", box((W / 2 - b - 0.03, y_front - 0.003, z0 + b / 2), (0.012, 0.006, min(0.008, b * 0.5)))))
    if s["stand"] == "pedestal":
        y_neck = d / 2 + d * 0.6 + 0.015
        parts.append(("stand", cylinder((0, y_neck, 0.02), (0, y_neck, zc), 0.025 + 0.02 * diag, 12)))
        base = cylinder_z((0, y_neck - 0.02, 0.01), 0.5, 0.02, 20)
        base.apply_scale([W * 0.35, 0.22 + 0.08 * diag, 1.0])
        parts.append(("base", base))
    elif s["stand"] == "feet":
        feet = []
        for sx in (-1, 1):
            x = sx * W * 0.36
            feet.append(box_between((x - 0.02, -0.01, 0.0), (x + 0.02, 0.01, z0 + 0.05)))
            feet.append(box_between((x - 0.025, -0.12 - 0.05 * diag, 0.0), (x + 0.025, 0.1 + 0.05 * diag, 0.015)))
        parts.append(("stand", concat(feet)))
    return parts, s
