"""Furniture generators: chair, diningtable, sofa, bed, bookcase, desk.

Canonical frame: up +z, floor at z=0, the user-facing side at -y (a chair's seat front, a
sofa's seat front, a bed's foot end, a bookcase's open side, a desk's knee side); the
back (backrest, headboard, back panel) is at +y. Dimensions are nominal metres.
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
    ellipsoid,
    hull,
    integer,
    rotated,
    sphere,
    tilt_back,
    uniform,
)
from core.procedural.palette import MATERIALS



def build_chair(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Chair: seat, legs or an office pedestal, a tilted backrest, optional armrests.

    Style: ``seat_width``, ``seat_depth``, ``seat_height`` (m); ``back_height`` above the
    seat (m); ``back_tilt_deg`` backwards lean; ``base`` legs (four legs) / pedestal (gas
    column and five-star base); ``back_style`` solid panel / slats (vertical) / rails
    (horizontal); ``n_slats``; ``has_armrests``; ``has_cushion`` fabric seat pad;
    ``leg_thickness`` (m).
    """
    base = choice(rng, ["legs", "pedestal"], p=[0.7, 0.3])
    s: Style = {
        "seat_width": uniform(rng, 0.4, 0.55),
        "seat_depth": uniform(rng, 0.38, 0.5),
        "seat_height": uniform(rng, 0.4, 0.5),
        "back_height": uniform(rng, 0.3, 0.6),
        "back_tilt_deg": uniform(rng, 0.0, 18.0),
        "base": base,
        "back_style": "solid" if base == "pedestal" else choice(rng, ["solid", "slats", "rails"]),
        "n_slats": integer(rng, 2, 5),
        "has_armrests": coin(rng, 0.35),
        "has_cushion": coin(rng, 0.4),
        "leg_thickness": uniform(rng, 0.025, 0.05),
    }
    sw, sd, sh = float(s["seat_width"]), float(s["seat_depth"]), float(s["seat_height"])
    bh, tilt, lt = float(s["back_height"]), float(s["back_tilt_deg"]), float(s["leg_thickness"])
    st = 0.04
    parts: list[Part] = []
    pivot = (0.0, sd / 2, sh)
    office = base == "pedestal"
    seat_name = "cushion_seat" if office else "seat"
    parts.append((seat_name, box((0, 0, sh - st / 2), (sw, sd, st if not office else 0.08))))
    if s["has_cushion"] and not office:
        parts.append(("cushion", box((0, -0.01, sh + 0.02), (sw * 0.94, sd * 0.92, 0.04))))
    back: list = []
    if office:
        parts.append(("column", cylinder_z((0, 0, (0.1 + sh - 0.08) / 2), 0.025, sh - 0.18, 12)))
        star, casters = [], []
        for k in range(5):
            a = 90 + 72 * k
            star.append(rotated(box((0.16, 0, 0.09), (0.32, 0.05, 0.035)), "z", a, (0, 0, 0)))
            ca = np.deg2rad(a)
            casters.append(sphere((0.3 * np.cos(ca), 0.3 * np.sin(ca), 0.035), 0.035, 1))
        parts.append(("star", concat(star)))
        parts.append(("caster", concat(casters)))
        support = box((0, sd / 2 + 0.02, sh + 0.02), (0.06, 0.04, 0.14))
        parts.append(("back_support", tilt_back(support, tilt, pivot)))
        panel = box((0, sd / 2 + 0.02, sh + 0.1 + bh / 2), (sw * 0.95, 0.07, bh))
        parts.append(("cushion_back", tilt_back(panel, tilt, pivot)))
    else:
        legs = []
        for sx in (-1, 1):
            for sy in (-1, 1):
                legs.append(box((sx * (sw / 2 - lt / 2), sy * (sd / 2 - lt / 2), (sh - st) / 2), (lt, lt, sh - st)))
        parts.append(("leg", concat(legs)))
        parts.append(("stretcher", concat([box((sx * (sw / 2 - lt / 2), 0, 0.15), (lt * 0.6, sd - lt, lt * 0.6)) for sx in (-1, 1)])))
        yb = sd / 2 - lt / 2
        back.append(box((-(sw / 2 - lt / 2), yb, sh + bh / 2), (lt, lt, bh)))
        back.append(box((sw / 2 - lt / 2, yb, sh + bh / 2), (lt, lt, bh)))
        inner = max(sw - 2 * lt, 0.02)
        if s["back_style"] == "solid":
            back.append(box((0, yb, sh + bh * 0.62), (inner, 0.025, bh * 0.7)))
        else:
            back.append(box((0, yb, sh + bh - 0.04), (inner, 0.025, 0.08)))
            n = int(s["n_slats"])
            for i in range(n):
                if s["back_style"] == "slats":
                    x = -inner / 2 + (i + 0.5) * inner / n
                    back.append(box((x, yb, sh + (bh - 0.08) / 2 + 0.04), (inner / n * 0.45, 0.02, max(bh - 0.16, 0.02))))
                else:
                    z = sh + 0.1 + i * (bh - 0.2) / n
                    back.append(box((0, yb, z), (inner, 0.02, 0.035)))
        parts.append(("backrest", tilt_back(concat(back), tilt, pivot)))
    if s["has_armrests"]:
        arms = []
        for sx in (-1, 1):
            x = sx * (sw / 2 + 0.03)
            arms.append(box((x, 0.02, sh + 0.11), (0.03, 0.03, 0.22)))
            arms.append(box((x, 0.02, sh + 0.23), (0.06, sd * 0.85, 0.03)))
        parts.append(("arm", concat(arms)))
    return parts, s


def build_diningtable(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Dining table: a top (rectangular, round or oval) on four legs, a pedestal or trestles.

    Style: ``top_shape`` rect / round / oval; ``length`` along x (m; the diameter when
    round); ``width`` along y (m); ``height`` (m); ``top_thickness`` (m); ``leg_style``
    four / pedestal / trestle; ``leg_thickness`` (m); ``has_apron`` skirt under the top.
    """
    shape = choice(rng, ["rect", "round", "oval"], p=[0.6, 0.2, 0.2])
    s: Style = {
        "top_shape": shape,
        "length": uniform(rng, 1.2, 2.2) if shape != "round" else uniform(rng, 0.9, 1.3),
        "width": uniform(rng, 0.75, 1.0),
        "height": uniform(rng, 0.72, 0.78),
        "top_thickness": uniform(rng, 0.025, 0.06),
        "leg_style": choice(rng, ["four", "pedestal", "trestle"], p=[0.6, 0.2, 0.2]),
        "leg_thickness": uniform(rng, 0.04, 0.09),
        "has_apron": coin(rng, 0.6),
    }
    if shape == "round":
        s["width"] = s["length"]
    L, W, H, tt, lt = (float(s[k]) for k in ("length", "width", "height", "top_thickness", "leg_thickness"))
    parts: list[Part] = []
    if shape == "rect":
        parts.append(("top", box((0, 0, H - tt / 2), (L, W, tt))))
    else:
        top = cylinder_z((0, 0, H - tt / 2), 0.5, tt, 32)
        top.apply_scale([L, W, 1.0])
        parts.append(("top", top))
    leg_h = H - tt
    # legs sit inside the top's footprint; for ellipses, on the inscribed rectangle
    inset = 0.5 if shape == "rect" else 0.5 / np.sqrt(2)
    lx, ly = max(L * inset - lt / 2 - 0.04, 0.1), max(W * inset - lt / 2 - 0.04, 0.1)
    if s["leg_style"] == "four":
        legs = [box((sx * lx, sy * ly, leg_h / 2), (lt, lt, leg_h)) for sx in (-1, 1) for sy in (-1, 1)]
        parts.append(("leg", concat(legs)))
    elif s["leg_style"] == "pedestal":
        parts.append(("pedestal", cylinder_z((0, 0, leg_h / 2), lt * 1.3, leg_h, 16)))
        foot = cylinder_z((0, 0, 0.02), 0.5, 0.04, 16)
        foot.apply_scale([min(L, W) * 0.6, min(L, W) * 0.6, 1.0])
        parts.append(("foot", foot))
    else:
        legs = []
        for sx in (-1, 1):
            x = sx * (lx - 0.05)
            legs.append(box((x, 0, leg_h / 2), (lt, lt * 1.5, leg_h)))
            legs.append(box((x, 0, 0.03), (lt * 1.2, W * 0.8, 0.06)))
            legs.append(box((x, 0, leg_h - 0.03), (lt * 1.2, W * 0.7, 0.05)))
        legs.append(box((0, 0, leg_h * 0.35), (2 * (lx - 0.05), lt * 0.8, lt * 0.8)))
        parts.append(("leg", concat(legs)))
    if s["has_apron"] and s["leg_style"] != "pedestal":
        ah = 0.08
        apron = [box((0, sy * ly, leg_h - ah / 2), (2 * lx, 0.02, ah)) for sy in (-1, 1)]
        apron += [box((sx * lx, 0, leg_h - ah / 2), (0.02, 2 * ly, ah)) for sx in (-1, 1)]
        parts.append(("apron", concat(apron)))
    return parts, s


def build_sofa(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Sofa: upholstered base, one seat cushion per seat, backrest and back cushions, arms.

    Style: ``n_seats`` 2-4; ``seat_width`` per seat (m); ``depth`` (m); ``seat_height``
    (m); ``back_height`` above the seat (m); ``arm_style`` square / rolled / none;
    ``arm_height`` above the seat (m); ``arm_width`` (m); ``has_legs`` (else a skirt to the
    floor); ``has_back_cushions``; ``n_pillows`` throw pillows (0-2).
    """
    s: Style = {
        "n_seats": integer(rng, 2, 4),
        "seat_width": uniform(rng, 0.5, 0.65),
        "depth": uniform(rng, 0.8, 1.0),
        "seat_height": uniform(rng, 0.38, 0.46),
        "back_height": uniform(rng, 0.3, 0.5),
        "arm_style": choice(rng, ["square", "rolled", "none"], p=[0.5, 0.35, 0.15]),
        "arm_height": uniform(rng, 0.1, 0.25),
        "arm_width": uniform(rng, 0.1, 0.25),
        "has_legs": coin(rng, 0.6),
        "has_back_cushions": coin(rng, 0.6),
        "n_pillows": integer(rng, 0, 2),
    }
    n, sw, d, sh = int(s["n_seats"]), float(s["seat_width"]), float(s["depth"]), float(s["seat_height"])
    bh, ah, aw = float(s["back_height"]), float(s["arm_height"]), float(s["arm_width"])
    inner = n * sw
    leg_h = 0.1 if s["has_legs"] else 0.02
    ct = 0.14  # seat cushion thickness
    bt = 0.2   # backrest thickness
    parts: list[Part] = []
    parts.append(("base", box_between((-inner / 2, -d / 2, leg_h), (inner / 2, d / 2 - bt, sh - ct))))
    back = box_between((-inner / 2 - (aw if s["arm_style"] != "none" else 0), d / 2 - bt, leg_h),
                       (inner / 2 + (aw if s["arm_style"] != "none" else 0), d / 2, sh + bh))
    parts.append(("back", tilt_back(back, 6.0, (0, d / 2, leg_h))))
    for i in range(n):
        x = -inner / 2 + (i + 0.5) * sw
        parts.append((f"seat_cushion_{i}", box((x, -0.02 - bt / 2 + 0.01, sh - ct / 2), (sw - 0.015, max(d - bt - 0.02, 0.05), ct))))
        if s["has_back_cushions"]:
            cush = box((x, d / 2 - bt - 0.07, sh + bh * 0.45), (sw - 0.02, 0.15, bh * 0.85))
            parts.append((f"back_cushion_{i}", tilt_back(cush, 10.0, (0, d / 2 - bt, sh))))
    if s["arm_style"] != "none":
        for side, sx in (("left", -1), ("right", 1)):
            x = sx * (inner / 2 + aw / 2)
            top = sh + ah
            parts.append((f"arm_{side}", box_between((x - aw / 2, -d / 2, leg_h), (x + aw / 2, d / 2 - 0.01, top))))
            if s["arm_style"] == "rolled":
                roll = cylinder((x, -d / 2, top), (x, d / 2 - 0.01, top), aw * 0.6, 12)
                parts.append((f"armroll_{side}", roll))
    width_total = inner + (2 * aw if s["arm_style"] != "none" else 0)
    if s["has_legs"]:
        legs = [cylinder_z((sx * (width_total / 2 - 0.06), sy * (d / 2 - 0.06), leg_h / 2), 0.025, leg_h, 8)
                for sx in (-1, 1) for sy in (-1, 1)]
        parts.append(("leg", concat(legs)))
    for i in range(int(s["n_pillows"])):
        sx = -1 if i == 0 else 1
        c = (sx * (inner / 2 - 0.18), d / 2 - bt - 0.12, sh + 0.16)
        # a throw pillow: a square outline with pinched edges, thick in the middle
        rim = [(c[0] + dx, c[1], c[2] + dz) for dx in (-0.16, 0.16) for dz in (-0.16, 0.16)]
        core = [(c[0] + dx, c[1] + dy, c[2] + dz) for dx in (-0.1, 0.1) for dz in (-0.1, 0.1) for dy in (-0.06, 0.06)]
        p = tilt_back(hull(rim + core), 15.0, c)
        parts.append((f"pillow_{i}", rotated(p, "y", sx * 12, c)))
    return parts, s


def build_bed(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Bed: frame on legs, mattress, headboard at +y, optional footboard, pillows and duvet.

    Style: ``width`` (m; single to king); ``length`` (m); ``frame_height`` top of the frame
    (m); ``mattress_thickness`` (m); ``headboard_height`` above the mattress (m);
    ``has_footboard``; ``n_pillows`` 1-2; ``has_duvet``; ``leg_height`` (m).
    """
    width = uniform(rng, 0.9, 1.9)
    s: Style = {
        "width": width,
        "length": uniform(rng, 1.95, 2.2),
        "frame_height": uniform(rng, 0.2, 0.4),
        "mattress_thickness": uniform(rng, 0.15, 0.3),
        "headboard_height": uniform(rng, 0.3, 0.9),
        "has_footboard": coin(rng, 0.5),
        "n_pillows": 1 if width < 1.25 else integer(rng, 1, 2),
        "has_duvet": coin(rng, 0.7),
        "leg_height": uniform(rng, 0.05, 0.18),
    }
    W, L, fh = width, float(s["length"]), float(s["frame_height"])
    mt, hh, lh = float(s["mattress_thickness"]), float(s["headboard_height"]), float(s["leg_height"])
    lh = min(lh, fh - 0.05)
    parts: list[Part] = []
    parts.append(("frame", box_between((-W / 2 - 0.03, -L / 2 - 0.03, lh), (W / 2 + 0.03, L / 2, fh))))
    legs = [box((sx * (W / 2 - 0.02), sy * (L / 2 - 0.05), lh / 2), (0.06, 0.06, lh)) for sx in (-1, 1) for sy in (-1, 1)]
    parts.append(("leg", concat(legs)))
    mtop = fh + mt
    parts.append(("mattress", box_between((-W / 2, -L / 2, fh), (W / 2, L / 2 - 0.02, mtop))))
    parts.append(("headboard", box_between((-W / 2 - 0.05, L / 2, 0.0), (W / 2 + 0.05, L / 2 + 0.05, mtop + hh))))
    if s["has_footboard"]:
        parts.append(("footboard", box_between((-W / 2 - 0.05, -L / 2 - 0.08, 0.0), (W / 2 + 0.05, -L / 2 - 0.03, mtop + 0.1))))
    npil = int(s["n_pillows"])
    for i in range(npil):
        x = 0.0 if npil == 1 else (-1 if i == 0 else 1) * W / 4
        pw = min(W / npil - 0.1, 0.7)
        parts.append((f"pillow_{i}", ellipsoid((x, L / 2 - 0.3, mtop + 0.06), (pw / 2, 0.22, 0.08), 2)))
    if s["has_duvet"]:
        y0, y1 = -L / 2 - 0.04, L / 2 - 0.6
        parts.append(("duvet", box_between((-W / 2 - 0.04, y0, mtop - 0.22), (W / 2 + 0.04, y1, mtop + 0.05))))
    return parts, s


def build_bookcase(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Bookcase: two sides, top, bottom and shelves open to -y, with rows of books.

    Style: ``width``, ``height``, ``depth`` (m); ``n_shelves`` compartments stacked
    vertically; ``has_back`` back panel; ``has_doors`` doors over the lowest compartment;
    ``books_fill`` fraction of each shelf's width filled with books; ``board_thickness``
    (m); ``has_plinth`` raised bottom with a kick board.
    """
    height = uniform(rng, 0.9, 2.0)
    s: Style = {
        "width": uniform(rng, 0.6, 1.2),
        "height": height,
        "depth": uniform(rng, 0.25, 0.4),
        "n_shelves": integer(rng, 2, max(2, min(6, int(height / 0.3)))),
        "has_back": coin(rng, 0.8),
        "has_doors": coin(rng, 0.3),
        "books_fill": uniform(rng, 0.3, 0.95),
        "board_thickness": uniform(rng, 0.018, 0.03),
        "has_plinth": coin(rng, 0.5),
    }
    W, H, D, t = (float(s[k]) for k in ("width", "height", "depth", "board_thickness"))
    n = int(s["n_shelves"])
    parts: list[Part] = []
    parts.append(("side", concat([box_between((sx * W / 2 - (t if sx > 0 else 0), -D / 2, 0), (sx * W / 2 + (t if sx < 0 else 0), D / 2, H))
                                  for sx in (-1, 1)])))
    z_bottom = 0.08 if s["has_plinth"] else 0.0
    boards = [box_between((-W / 2 + t, -D / 2, H - t), (W / 2 - t, D / 2, H)),
              box_between((-W / 2 + t, -D / 2, z_bottom), (W / 2 - t, D / 2, z_bottom + t))]
    z_levels = np.linspace(z_bottom + t, H - t, n + 1)
    for z in z_levels[1:-1]:
        boards.append(box_between((-W / 2 + t, -D / 2 + 0.01, z - t / 2), (W / 2 - t, D / 2, z + t / 2)))
    parts.append(("shelf", concat(boards)))
    if s["has_plinth"]:
        parts.append(("plinth", box_between((-W / 2 + t, -D / 2 + 0.01, 0), (W / 2 - t, -D / 2 + 0.01 + t, z_bottom))))
    if s["has_back"]:
        parts.append(("back", box_between((-W / 2 + t, D / 2 - 0.008, z_bottom), (W / 2 - t, D / 2, H - t))))
    first_open = 0
    if s["has_doors"]:
        first_open = 1
        z0, z1 = z_levels[0] - t, z_levels[1] + t / 2
        doors, handles = [], []
        for sx in (-1, 1):
            x0, x1 = sorted((sx * 0.002, sx * W / 2))
            doors.append(box_between((x0, -D / 2 - 0.02, z0), (x1, -D / 2, z1)))
            handles.append(box((sx * 0.05, -D / 2 - 0.035, z1 - 0.08), (0.015, 0.02, 0.08)))
        parts.append(("door", concat(doors)))
        parts.append(("handle", concat(handles)))
    book_colors = [c for m in ("label", "paint", "fabric") for c in MATERIALS[m]]
    fill = float(s["books_fill"])
    inner_w = W - 2 * t
    for k in range(first_open, n):
        z0 = z_levels[k] + (t / 2 if k > 0 else 0)
        gap_h = z_levels[k + 1] - t / 2 - z0
        target = inner_w * min(1.0, fill * rng.uniform(0.7, 1.2))
        x = -inner_w / 2 + rng.uniform(0, inner_w - target) if target < inner_w else -inner_w / 2
        x_end = x + target
        books = []
        while x < x_end - 0.02:
            bw = float(rng.uniform(0.02, 0.05))
            bh = max(float(min(gap_h - 0.02, rng.uniform(0.17, 0.32))), 0.01)
            bd = max(float(min(D - 0.03, rng.uniform(0.15, 0.24))), 0.01)
            book = box((x + bw / 2, -D / 2 + 0.015 + bd / 2, z0 + bh / 2), (bw * 0.97, bd, bh))
            rgb = np.array(book_colors[int(rng.integers(len(book_colors)))]) + rng.integers(-15, 16, size=3)
            book.visual.face_colors = np.concatenate([np.clip(rgb, 0, 255), [255]]).astype(np.uint8)
            books.append(book)
            x += bw
        if books:
            parts.append((f"books_{k}", concat(books)))
    return parts, s


def build_desk(rng: np.random.Generator) -> tuple[list[Part], Style]:
    """Desk: a top on drawer pedestals and/or legs, modesty panel at the back, optional hutch.

    Style: ``width`` (m, along x), ``depth`` (m), ``height`` (m); ``top_thickness`` (m);
    ``n_pedestals`` 0-2 drawer units (0 = a single pencil drawer); ``n_drawers`` per
    pedestal; ``support`` legs (metal legs) / panel (slab ends) for ends without a
    pedestal; ``has_modesty_panel``; ``has_hutch`` a raised shelf at the back.
    """
    s: Style = {
        "width": uniform(rng, 1.0, 1.8),
        "depth": uniform(rng, 0.55, 0.8),
        "height": uniform(rng, 0.72, 0.76),
        "top_thickness": uniform(rng, 0.025, 0.045),
        "n_pedestals": integer(rng, 0, 2),
        "n_drawers": integer(rng, 2, 4),
        "support": choice(rng, ["legs", "panel"]),
        "has_modesty_panel": coin(rng, 0.6),
        "has_hutch": coin(rng, 0.3),
    }
    W, D, H, tt = (float(s[k]) for k in ("width", "depth", "height", "top_thickness"))
    npd, nd = int(s["n_pedestals"]), int(s["n_drawers"])
    parts: list[Part] = []
    parts.append(("top", box_between((-W / 2, -D / 2, H - tt), (W / 2, D / 2, H))))
    ped_w = 0.42
    ends = {-1: npd >= 2, 1: npd >= 1}   # which ends carry a pedestal (x sign)
    fronts, handles, legs, panels, peds = [], [], [], [], []
    for sx, has_ped in ends.items():
        if has_ped:
            x0, x1 = sorted((sx * W / 2, sx * (W / 2 - ped_w)))
            peds.append(box_between((x0, -D / 2 + 0.02, 0.0), (x1, D / 2 - 0.02, H - tt)))
            dh = (H - tt - 0.05) / nd
            for i in range(nd):
                z0 = 0.04 + i * dh
                fronts.append(box_between((x0 + 0.01, -D / 2 + 0.005, z0 + 0.005), (x1 - 0.01, -D / 2 + 0.025, z0 + dh - 0.005)))
                handles.append(box(((x0 + x1) / 2, -D / 2, z0 + dh * 0.7), (0.12, 0.02, 0.015)))
        elif s["support"] == "legs":
            for sy in (-1, 1):
                legs.append(box((sx * (W / 2 - 0.04), sy * (D / 2 - 0.04), (H - tt) / 2), (0.045, 0.045, H - tt)))
        else:
            x0, x1 = sorted((sx * W / 2, sx * (W / 2 - 0.035)))
            panels.append(box_between((x0, -D / 2 + 0.02, 0.0), (x1, D / 2 - 0.02, H - tt)))
    if peds:
        parts.append(("pedestal", concat(peds)))
        parts.append(("drawer", concat(fronts)))
    if npd == 0:
        parts.append(("drawer", box_between((-0.3, -D / 2 + 0.03, H - tt - 0.09), (0.3, -D / 2 + 0.05, H - tt))))
        handles.append(box((0, -D / 2 + 0.02, H - tt - 0.045), (0.12, 0.02, 0.015)))
    if handles:
        parts.append(("handle", concat(handles)))
    if legs:
        parts.append(("leg", concat(legs)))
    if panels:
        parts.append(("panel", concat(panels)))
    if s["has_modesty_panel"]:
        parts.append(("modesty_panel", box_between((-W / 2 + 0.05, D / 2 - 0.05, H * 0.35), (W / 2 - 0.05, D / 2 - 0.03, H - tt))))
    if s["has_hutch"]:
        hutch = [box_between((sx * W / 2 - (0.02 if sx > 0 else 0), D / 2 - 0.25, H), (sx * W / 2 + (0.02 if sx < 0 else 0), D / 2, H + 0.35))
                 for sx in (-1, 1)]
        hutch.append(box_between((-W / 2, D / 2 - 0.25, H + 0.33), (W / 2, D / 2, H + 0.36)))
        hutch.append(box_between((-W / 2, D / 2 - 0.02, H), (W / 2, D / 2, H + 0.33)))
        parts.append(("hutch", concat(hutch)))
    return parts, s
