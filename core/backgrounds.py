"""Background images for compositing: scikit-image's real photos, procedural clutter and
the user's own photo folder (SPEC §3 "Backgrounds").

Every background is stored as a square ``(S, S, 3) uint8`` RGB array: the centre square of
the source, resized with ``cv2.INTER_AREA`` to ``S = BackgroundParams.size``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.io import read_image, rng_for
from core.params import BackgroundParams

log = logging.getLogger("cad2real.backgrounds")

DEFAULT_SIZE: int = BackgroundParams.model_fields["size"].default

# Name (as the ``skimage.data`` loader function is called) -> the file that ships inside
# ``skimage/data``. Only files in the wheel: none of these needs a pooch download.
# Excluded as synthetic or not photo-like: logo, chessboard, phantom, text, color (a colour
# wheel), horse (a binary silhouette), microaneurysms (102 px), the lfw/npz/tif blobs, and
# motorcycle_left/right: a motorbike is one of our classes, so it must not be a background.
_SKIMAGE_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "cell": "cell.png",
    "chelsea": "chelsea.png",
    "clock": "clock_motion.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "moon": "moon.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}

# Held out for the proxy-real evaluation set (SPEC §3: "real photo backgrounds" no training
# image shows): scenes with depth and clutter, none showing one of our classes.
SKIMAGE_HELDOUT: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "coins", "rocket")
SKIMAGE_TRAIN: tuple[str, ...] = tuple(n for n in _SKIMAGE_FILES if n not in SKIMAGE_HELDOUT)

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Background:
    """One background photo.

    name: ``"skimage:coffee"``, ``"clutter:0007"`` or ``"dir:relative/path.jpg"``;
    image: (S, S, 3) uint8 RGB, S = ``BackgroundParams.size``.
    """

    name: str
    image: np.ndarray


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, resize to ``(size, size)`` with INTER_AREA; grey -> RGB.

    (H, W) or (H, W, 1|3|4) uint8 -> (size, size, 3) uint8.
    """
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[..., :3]
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = image[y0 : y0 + side, x0 : x0 + side]
    if side != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop, dtype=np.uint8)


def _skimage_data_dir() -> Path:
    import skimage.data  # local: only needed for its folder

    return Path(skimage.data.__file__).parent


def skimage_photos(names: tuple[str, ...] | list[str], size: int = DEFAULT_SIZE) -> list[Background]:
    """The named scikit-image photos as backgrounds (``name = "skimage:<name>"``), read from
    the files shipped in ``skimage/data`` (no download). Unknown names raise ``ValueError``."""
    unknown = [n for n in names if n not in _SKIMAGE_FILES]
    if unknown:
        raise ValueError(f"unknown scikit-image photos {unknown}; known: {sorted(_SKIMAGE_FILES)}")
    root = _skimage_data_dir()
    out = []
    for name in names:
        path = root / _SKIMAGE_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: scikit-image photo {name!r} is not installed with scikit-image")
        out.append(Background(f"skimage:{name}", square_resize(read_image(path), size)))
    return out


def _fractal_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """(size, size) float32 in [0, 1]: Gaussian noise with a 1/f^beta amplitude spectrum."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**beta
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=(size, size)).astype(np.float32)
    noise -= noise.min()
    return noise / max(float(noise.max()), 1e-6)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random RGB colour, pulled towards its grey by a random amount: real clutter is
    rarely fully saturated."""
    c = rng.uniform(0, 255, size=3)
    c = c.mean() + rng.uniform(0.25, 1.0) * (c - c.mean())
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))  # type: ignore[return-value]


def procedural_clutter(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered synthetic background, (size, size, 3) uint8 RGB, deterministic given ``rng``.

    A random two-colour gradient, then many random filled/outlined rectangles, ellipses,
    polygons and lines of random colours, a slight blur, and a 1/f (fractal) noise texture
    modulating the brightness so that flat regions are not flat.
    """
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0 = np.array(_random_colour(rng), np.float32)
    c1 = np.array(_random_colour(rng), np.float32)
    img = np.ascontiguousarray((c0 + ramp[..., None] * (c1 - c0)).astype(np.uint8))

    n_shapes = int(rng.integers(40, 90))
    for _ in range(n_shapes):
        kind = int(rng.integers(0, 4))
        colour = _random_colour(rng)
        thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, max(2, size // 40) + 1))
        # Sizes from a log-uniform law: a few big shapes and many small ones, as in clutter.
        extent = float(np.exp(rng.uniform(np.log(size * 0.02), np.log(size * 0.5))))
        cx, cy = (int(v) for v in rng.integers(0, size, size=2))
        if kind == 0:
            w, h = (int(v) for v in np.maximum(1, rng.uniform(0.3, 1.0, 2) * extent))
            cv2.rectangle(img, (cx - w // 2, cy - h // 2), (cx + w // 2, cy + h // 2), colour, thickness)
        elif kind == 1:
            axes = tuple(int(v) for v in np.maximum(1, rng.uniform(0.2, 0.6, 2) * extent))
            cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0.0, 360.0, colour, thickness)
        elif kind == 2:
            n = int(rng.integers(3, 8))
            pts = np.array([cx, cy]) + rng.uniform(-0.5, 0.5, (n, 2)) * extent
            pts = pts.astype(np.int32).reshape(-1, 1, 2)
            if thickness < 0:
                cv2.fillPoly(img, [pts], colour)
            else:
                cv2.polylines(img, [pts], True, colour, thickness)
        else:
            dx, dy = rng.uniform(-1, 1, 2) * extent
            cv2.line(img, (cx, cy), (int(cx + dx), int(cy + dy)), colour, int(rng.integers(1, max(2, size // 32) + 1)))

    sigma = float(rng.uniform(0.5, 1.5)) * size / 256
    img_f = cv2.GaussianBlur(img, (0, 0), sigmaX=max(sigma, 0.3)).astype(np.float32)
    texture = _fractal_noise(rng, size, beta=float(rng.uniform(0.8, 1.6)))
    strength = float(rng.uniform(0.2, 0.5))
    img_f *= (1.0 - strength) + 2.0 * strength * texture[..., None]
    return np.clip(np.round(img_f), 0, 255).astype(np.uint8)


def load_folder(dir: str | Path, size: int) -> list[Background]:
    """Every ``*.jpg|*.jpeg|*.png`` (any case) below ``dir``, sorted by relative path, as
    backgrounds named ``"dir:<relative path>"``.

    Raises ``FileNotFoundError`` for a missing folder, ``ValueError`` for a folder without
    images or for an unreadable image (the message names the file).
    """
    root = Path(dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: background folder not found")
    paths = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not paths:
        raise ValueError(f"{root}: no background images (*.jpg, *.jpeg, *.png) found")
    return [Background(f"dir:{p.relative_to(root).as_posix()}", square_resize(read_image(p), size)) for p in paths]


def load_backgrounds(p: BackgroundParams, seed: int) -> list[Background]:
    """The training backgrounds: scikit-image's training photos (``p.skimage``), then
    ``p.procedural`` clutter images (image i from ``rng_for(seed, "clutter", i)``), then the
    user's folder (``p.dir``). Deterministic for a given ``p`` and ``seed``."""
    out: list[Background] = []
    if p.skimage:
        out += skimage_photos(SKIMAGE_TRAIN, p.size)
    out += [
        Background(f"clutter:{i:04d}", procedural_clutter(rng_for(seed, "clutter", i), p.size))
        for i in range(p.procedural)
    ]
    if p.dir and (p.dir_required or Path(p.dir).is_dir()):
        out += load_folder(p.dir, p.size)
    elif p.dir:
        log.warning("skipped: background folder not found at %s (composite.backgrounds.dir; dir_required: true "
                    "makes this an error)", p.dir)
    if not out:
        raise ValueError(
            "no backgrounds: set composite.backgrounds.skimage: true, "
            "composite.backgrounds.procedural > 0, or composite.backgrounds.dir to a photo folder"
        )
    return out
