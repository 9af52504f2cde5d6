"""Part colours: each part name maps to a material, each material to plausible colours.

A model samples one colour per material (so all four chair legs share a wood), with a
small seeded jitter; materials in :data:`PER_PART` are sampled per part instead (books,
cushions). Parts whose material is ``"preset"`` keep the face colours their generator
set (a row of multicoloured books is one part).
"""

from __future__ import annotations

import numpy as np
import trimesh

RGB = tuple[int, int, int]

GREY: tuple[int, int, int, int] = (200, 200, 200, 255)

MATERIALS: dict[str, list[RGB]] = {
    "paint": [(200, 30, 30), (30, 60, 160), (235, 235, 235), (25, 25, 28), (150, 152, 158),
              (40, 110, 60), (230, 190, 40), (120, 20, 30), (90, 140, 190)],
    "rubber": [(22, 22, 24)],
    "glass": [(40, 55, 75), (55, 65, 80), (30, 40, 55)],
    "chrome": [(195, 195, 200), (165, 168, 172)],
    "metal": [(125, 125, 130), (80, 80, 85), (170, 170, 175), (45, 45, 48)],
    "dark": [(30, 30, 32), (45, 45, 50)],
    "headlight": [(245, 245, 225)],
    "taillight": [(200, 25, 25)],
    "indicator": [(240, 150, 30)],
    "wood": [(140, 95, 55), (100, 65, 35), (185, 145, 95), (70, 45, 25), (215, 190, 150)],
    "laminate": [(240, 240, 235), (30, 30, 30), (185, 145, 95), (150, 150, 150)],
    "fabric": [(120, 30, 35), (40, 60, 110), (90, 90, 95), (160, 140, 110), (60, 100, 70),
               (200, 190, 170), (35, 35, 40)],
    "leather": [(60, 35, 20), (25, 25, 25), (120, 70, 35), (200, 185, 160)],
    "white": [(238, 238, 235)],
    "screen": [(12, 14, 20), (20, 25, 35)],
    "plastic": [(30, 30, 32), (225, 225, 225), (90, 90, 95)],
    "bottle_glass": [(40, 110, 50), (110, 60, 20), (175, 205, 195), (60, 140, 200)],
    "label": [(240, 235, 220), (200, 40, 40), (30, 60, 140), (230, 200, 60), (20, 20, 20)],
    "cap": [(200, 30, 30), (230, 230, 230), (30, 90, 180), (200, 170, 60), (30, 30, 30)],
    "sail": [(245, 245, 240), (235, 230, 215)],
    "hull": [(245, 245, 245), (20, 40, 90), (150, 20, 20), (30, 30, 30), (60, 110, 90)],
    "antifouling": [(150, 30, 30), (30, 30, 90), (40, 40, 40)],
    "deck": [(180, 140, 90), (225, 225, 220), (150, 150, 150)],
    "bedding": [(240, 240, 240), (180, 200, 220), (200, 90, 90), (90, 110, 150), (210, 200, 170)],
    "mattress": [(235, 235, 230)],
    "cushion": [(120, 30, 35), (40, 60, 110), (90, 90, 95), (160, 140, 110), (60, 100, 70), (200, 190, 170)],
    "bus_paint": [(235, 190, 30), (200, 30, 30), (235, 235, 235), (30, 80, 160), (40, 120, 70)],
    "train_paint": [(235, 235, 235), (200, 30, 30), (30, 60, 140), (150, 150, 155), (40, 110, 60), (230, 190, 40)],
    "plane_paint": [(240, 240, 242), (225, 225, 230), (190, 195, 200), (30, 60, 140)],
    "accent": [(200, 30, 30), (30, 60, 160), (230, 190, 40), (40, 40, 45), (40, 120, 70)],
}

# Materials that get an independent colour for every part using them.
PER_PART = frozenset({"cushion", "bedding"})

# category -> (prefix -> material). A part uses the longest prefix its name starts with;
# names with no matching prefix use the "" entry.
RULES: dict[str, dict[str, str]] = {
    "car": {"": "paint", "tyre": "rubber", "wheel": "rubber", "hub": "chrome", "glass": "glass",
            "window": "glass", "headlight": "headlight", "taillight": "taillight", "grille": "dark",
            "bumper": "dark", "mirror": "paint", "pillar": "paint"},
    "bus": {"": "bus_paint", "wheel": "rubber", "hub": "chrome", "window": "glass", "windscreen": "glass",
            "door": "glass", "headlight": "headlight", "taillight": "taillight", "bumper": "dark",
            "sign": "dark", "stripe": "accent", "roof": "white", "skirt": "dark"},
    "train": {"": "train_paint", "window": "glass", "windscreen": "glass", "bogie": "dark",
              "wheel": "metal", "headlight": "headlight", "stripe": "accent", "roof": "metal",
              "skirt": "dark", "pantograph": "metal", "coupler": "dark", "door": "accent"},
    "aeroplane": {"": "plane_paint", "engine": "metal", "window": "glass", "cockpit": "glass",
                  "fin": "accent", "propeller": "dark", "spinner": "metal", "gear": "dark", "wing": "plane_paint"},
    "boat": {"": "hull", "bottom": "antifouling", "deck": "deck", "cabin": "white", "window": "glass",
             "windscreen": "glass", "mast": "metal", "boom": "metal", "sail": "sail", "jib": "sail",
             "rail": "chrome", "engine": "dark", "flybridge": "white", "stripe": "accent"},
    "bicycle": {"": "paint", "tyre": "rubber", "spoke": "chrome", "hub": "metal", "saddle": "leather",
                "handlebar": "metal", "grip": "dark", "crank": "metal", "chainring": "metal",
                "pedal": "dark", "seatpost": "metal", "stem": "metal", "basket": "metal", "fork": "paint"},
    "motorbike": {"": "paint", "tyre": "rubber", "rim": "metal", "hub": "chrome", "seat": "leather",
                  "engine": "metal", "exhaust": "chrome", "fork": "chrome", "handlebar": "dark",
                  "headlight": "headlight", "taillight": "taillight", "frame": "dark", "swingarm": "dark",
                  "mirror": "dark", "windscreen": "glass", "fender": "paint", "tank": "paint"},
    "bottle": {"": "bottle_glass", "label": "label", "cap": "cap"},
    "chair": {"": "wood", "seat": "wood", "cushion": "fabric", "column": "metal", "base": "dark",
              "star": "dark", "caster": "dark", "arm": "wood"},
    "diningtable": {"": "wood", "top": "wood"},
    "sofa": {"": "fabric", "seat_cushion": "cushion", "back_cushion": "cushion", "leg": "dark",
             "pillow": "cushion"},
    "tvmonitor": {"": "plastic", "screen": "screen", "stand": "plastic", "base": "plastic",
                  "led": "indicator", "speaker": "dark"},
    "bed": {"": "wood", "mattress": "mattress", "pillow": "white", "duvet": "bedding", "blanket": "bedding"},
    "bookcase": {"": "wood", "books": "preset", "door": "wood", "handle": "metal", "back": "wood"},
    "desk": {"": "laminate", "handle": "metal", "leg": "metal", "drawer": "laminate"},
}


def material_of(category: str, part_name: str) -> str:
    rules = RULES.get(category, {"": "paint"})
    best = ""
    for prefix in rules:
        if prefix and part_name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return rules.get(best, "paint")


def _jittered(rng: np.random.Generator, material: str) -> np.ndarray:
    options = MATERIALS[material]
    base = np.array(options[int(rng.integers(len(options)))], dtype=float)
    # brightness jitter keeps dark materials neutral (tyres must not turn purple); the
    # small per-channel term varies the hue of light ones
    rgb = base * rng.uniform(0.88, 1.12) + rng.integers(-4, 5, size=3)
    return np.concatenate([np.clip(np.round(rgb), 0, 255), [255]]).astype(np.uint8)


def assign_colors(category: str, parts: dict[str, trimesh.Trimesh], rng: np.random.Generator,
                  enabled: bool = True) -> None:
    """Set RGBA uint8 face colours on every part (in place).

    The colours are always drawn from ``rng`` (in sorted material/part order), also when
    ``enabled`` is False, so what ``rng`` yields afterwards does not depend on the flag.
    """
    materials = {name: material_of(category, name) for name in parts}
    shared = {m: _jittered(rng, m) for m in sorted(set(materials.values()) - PER_PART - {"preset"})}
    for name in sorted(parts):
        mesh, material = parts[name], materials[name]
        if material in PER_PART:
            color = _jittered(rng, material)
        elif material == "preset":
            color = None
        else:
            color = shared[material]
        if not enabled:
            mesh.visual.face_colors = np.array(GREY, dtype=np.uint8)
        elif color is not None:
            mesh.visual.face_colors = color
