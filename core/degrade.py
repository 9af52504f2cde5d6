"""Domain-gap effects of the proxy-real evaluation set (SPEC §3): occluders, truncation,
sensor noise, motion blur and JPEG. Pure functions; randomness only from the given ``rng``.

Images are (H, W, 3) or (H, W) uint8; masks (H, W) uint8 with 255 = object; boxes
(x0, y0, x1, y1) in pixels with x1/y1 exclusive. Every function returns new arrays.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from core.rendering import mask_bbox

# Occluder size as a fraction of the object's longest bbox side.
OCCLUDER_SIZE = (0.25, 0.6)
# Fraction of the object's extent (along the cut axis) pushed out of the frame.
TRUNCATION_FRACTION = (0.15, 0.5)
MAX_TRUNCATION_ZOOM = 1.6


def _occluder_texture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A solid colour, stripes, or smoothed noise: float32 of ``shape`` in [0, 255]."""
    h, w = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    c0 = rng.uniform(0, 255, channels).astype(np.float32)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        tex = np.broadcast_to(c0, (h, w, channels)).copy()
    elif kind == 1:
        c1 = rng.uniform(0, 255, channels).astype(np.float32)
        period = rng.uniform(3, max(4.0, min(h, w) / 4))
        theta = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period) > 0).astype(np.float32)
        tex = c0 + t[..., None] * (c1 - c0)
    else:
        noise = rng.standard_normal((h, w, channels)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=float(rng.uniform(1.0, 4.0)))
        noise = noise.reshape(h, w, channels)
        noise /= max(float(noise.std()), 1e-6)
        tex = c0 + noise * float(rng.uniform(15, 50))
    tex = np.clip(tex, 0, 255)
    return tex.reshape(shape)


def add_occluders(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, n_max: int = 2
) -> tuple[np.ndarray, float]:
    """Paint 1..n_max random polygons (solid, striped or noise-textured) over part of the
    object. Returns the new image and the fraction of object pixels (``mask > 127``) they
    cover, in [0, 1]; an empty mask gets no occluder and fraction 0."""
    obj = mask > 127
    n_obj = int(np.count_nonzero(obj))
    out = image.copy()
    if n_obj == 0 or n_max < 1:
        return out, 0.0
    x0, y0, x1, y1 = mask_bbox(obj)
    longest = max(x1 - x0, y1 - y0)
    ys, xs = np.nonzero(obj)
    covered = np.zeros(mask.shape, np.uint8)
    for _ in range(int(rng.integers(1, n_max + 1))):
        # Centred on an object pixel so that the occluder always overlaps the object.
        i = int(rng.integers(0, len(xs)))
        cx, cy = float(xs[i]), float(ys[i])
        radius = 0.5 * longest * rng.uniform(*OCCLUDER_SIZE)
        n = int(rng.integers(3, 9))
        if rng.random() < 0.5:  # an axis-aligned patch, e.g. a box or a sign in front
            rw, rh = radius * rng.uniform(0.5, 1.5, 2)
            pts = np.array([[cx - rw, cy - rh], [cx + rw, cy - rh], [cx + rw, cy + rh], [cx - rw, cy + rh]])
        else:  # a star-shaped random polygon
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = radius * rng.uniform(0.5, 1.2, n)
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        poly = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(poly, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], 1)
        sel = poly > 0
        tex = _occluder_texture(rng, image.shape)
        out[sel] = np.clip(np.round(tex[sel]), 0, 255).astype(np.uint8)
        covered |= poly
    fraction = float(np.count_nonzero(covered.astype(bool) & obj)) / n_obj
    return out, fraction


def truncate(
    image: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], bool]:
    """Zoom and shift the frame so that a part (15–50 % of its extent) of the object leaves
    the image through a random side; same output size. The zoom (at most
    ``MAX_TRUNCATION_ZOOM``) keeps the source window inside the image where it can; what
    is left is mirrored from the image, or replicated from its border where a mirror would
    duplicate the object.

    Returns (image, mask, bbox of ``mask > 127``, truncated). An empty or zero-size box is
    returned unchanged with ``truncated=False``.
    """
    h, w = mask.shape[:2]
    x0, y0, x1, y1 = bbox
    if x1 <= x0 or y1 <= y0 or not (mask > 127).any():
        return image.copy(), mask.copy(), tuple(int(v) for v in bbox), False  # type: ignore[return-value]
    side = int(rng.integers(0, 4))  # 0 left, 1 right, 2 top, 3 bottom
    frac = float(rng.uniform(*TRUNCATION_FRACTION))
    zoom_u = float(rng.uniform(1.0, 1.5))

    # Along the cut axis: the cut line maps onto the frame edge. Across it: zoom about the
    # object's centre, clamped so the source window stays inside the image.
    horizontal = side < 2
    n_cut, n_across = (w, h) if horizontal else (h, w)
    lo, hi = (x0, x1) if horizontal else (y0, y1)
    a_lo, a_hi = (y0, y1) if horizontal else (x0, x1)
    cut = hi - frac * (hi - lo) if side in (1, 3) else lo + frac * (hi - lo)
    # The window [cut - n/z, cut] (or [cut, cut + n/z]) should lie in the image.
    room = cut if side in (1, 3) else n_cut - cut
    z = min(max(zoom_u, n_cut / max(room, 1e-6)), MAX_TRUNCATION_ZOOM)
    t_cut = n_cut - z * cut if side in (1, 3) else -z * cut
    centre = 0.5 * (a_lo + a_hi)
    t_across = float(np.clip(centre - z * centre, n_across - z * n_across, 0.0))
    if horizontal:
        m = np.array([[z, 0, t_cut], [0, z, t_across]], np.float64)
    else:
        m = np.array([[z, 0, t_across], [0, z, t_cut]], np.float64)
    out_mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Mirror the image into the vacated strip unless the mirror would copy the object.
    mirrored = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    border = cv2.BORDER_REPLICATE if (mirrored > 0).sum() > (out_mask > 0).sum() else cv2.BORDER_REFLECT_101
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    new_bbox = mask_bbox(out_mask > 127)
    nx0, ny0, nx1, ny1 = new_bbox
    touches = {0: nx0 == 0, 1: nx1 == w, 2: ny0 == 0, 3: ny1 == h}[side]
    return out, out_mask, new_bbox, bool(touches and (out_mask > 127).any())


def sensor_noise(image: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Gaussian read noise of ``std`` ([0, 1] units) plus signal-dependent shot noise
    (variance proportional to intensity, half that std at full scale); uint8 in and out."""
    x = image.astype(np.float32) / 255.0
    read = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(std)
    shot = rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(x) * np.float32(0.5 * std)
    return np.clip(np.round((x + read + shot) * 255.0), 0, 255).astype(np.uint8)


def motion_blur(image: np.ndarray, rng: np.random.Generator, length_px: int, angle_deg: float) -> np.ndarray:
    """Linear motion blur: a line kernel of ``length_px`` at ``angle_deg`` (counter-clockwise
    from +x). The weights along the line ramp by a random amount (the camera speeding up or
    slowing down during exposure). ``length_px <= 1`` returns a copy."""
    if length_px <= 1:
        return image.copy()
    k = length_px if length_px % 2 == 1 else length_px + 1
    c = (k - 1) / 2.0
    n = 4 * k  # dense samples along the segment, splatted bilinearly
    t = np.linspace(-0.5, 0.5, n) * (length_px - 1)
    ramp = 1.0 + float(rng.uniform(-0.5, 0.5)) * np.linspace(-1.0, 1.0, n)
    xs = c + t * math.cos(math.radians(angle_deg))
    ys = c - t * math.sin(math.radians(angle_deg))
    kernel = np.zeros((k, k), np.float64)
    for x, y, wgt in zip(xs, ys, ramp):
        ix, iy = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - ix, y - iy
        for dy, dx, ww in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= iy + dy < k and 0 <= ix + dx < k:
                kernel[iy + dy, ix + dx] += wgt * ww
    kernel /= kernel.sum()
    out = cv2.filter2D(image.astype(np.float32), -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT)
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(image.shape)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode and decode at ``quality`` (1..100) with OpenCV; RGB or grey uint8."""
    q = int(np.clip(round(quality), 1, 100))
    colour = image.ndim == 3
    src = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if colour else image
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape} at quality {q}")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if colour else out
