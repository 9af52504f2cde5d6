"""Pasting renders on backgrounds (seed 003 §3.1; SPEC §4.2). Pure functions: the output is
determined by the inputs and the ``rng``; every sampled value is returned in ``aug``.

Pipeline of :func:`composite` (seed 003 §3.1): background channel swap / flips / 90°
rotations on a random crop; object placed at a random scale and position; light-colour
jitter, Gaussian noise and Gaussian blur of the object alone; alpha, blurred-alpha or
Poisson blending; then a Gaussian blur of the object boundary "including its boundaries
with the adjacent background image pixels". The composite also yields the grey-scale
(composite, clean render) pair used to train the feature adaptation (seed 004 §4.2.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from core.params import CompositeParams
from core.rendering import mask_bbox

BLEND_MODES: tuple[str, ...] = ("alpha", "blurred_alpha", "poisson")
# Source pixels of margin kept around the mask bbox when cropping the render, so that the
# resampling kernel sees the object's soft edge.
PLACE_MARGIN_PX = 2
# Poisson blending needs a mask clear of the canvas border and big enough to have an inside.
POISSON_MIN_PIXELS = 64
POISSON_BORDER_PX = 2


@dataclass(frozen=True)
class RenderLayers:
    """One rendered sample, as the render stage stores it.

    rgb: (H, W, 3) uint8, straight (not premultiplied) colour; mask: (H, W) uint8 alpha,
    255 = object; semantic: (H, W, 3) uint8 flat category colour shaded by depth, 0 =
    background; depth: (H, W) float32 metres, 0 = background.
    """

    rgb: np.ndarray
    mask: np.ndarray
    semantic: np.ndarray
    depth: np.ndarray

    def __post_init__(self) -> None:
        h, w = self.mask.shape[:2]
        shapes = {"rgb": (h, w, 3), "mask": (h, w), "semantic": (h, w, 3), "depth": (h, w)}
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"RenderLayers.{name}: shape {arr.shape}, expected {shape} (from mask {self.mask.shape})")


@dataclass(frozen=True)
class Composite:
    """One training composite of side S = ``CompositeParams.image_size``.

    image: (S, S, 3) uint8 RGB; mask: (S, S) uint8 object alpha after placement (before the
    blending blur), 255 = object; semantic: (S, S, 3) uint8 aligned with ``image``, non-zero
    exactly where ``mask > 127``; clean: (S, S) uint8 grey clean render on white, same
    placement; image_grey: (S, S) uint8 grey composite (``clean``/``image_grey`` are the
    seed 004 §4.2.3 adaptation pair); bbox: (x0, y0, x1, y1) tight box of ``mask > 127``,
    pixels, x1/y1 exclusive; aug: every sampled augmentation value (flat python scalars).
    """

    image: np.ndarray
    mask: np.ndarray
    semantic: np.ndarray
    clean: np.ndarray
    image_grey: np.ndarray
    bbox: tuple[int, int, int, int]
    aug: dict[str, float | int | str | bool]


def _resize(image: np.ndarray, size: tuple[int, int], *, shrink: bool) -> np.ndarray:
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def augment_background(
    bg: np.ndarray, rng: np.random.Generator, p: CompositeParams, size: int
) -> tuple[np.ndarray, dict[str, float | int | str | bool]]:
    """Random square crop (side = U(p.bg_crop_scale) × the shorter side), channel
    permutation with ``p.bg_channel_swap_p``, horizontal and vertical flips each with
    ``p.bg_flip_p``, a 90°·k rotation (k in 1..3) with ``p.bg_rot90_p`` (seed 003 §3.1),
    resized to (size, size). (H, W[, 3]) uint8 -> (size, size, 3) uint8, and the sampled
    values."""
    if bg.ndim == 2:
        bg = np.repeat(bg[..., None], 3, axis=2)
    h, w = bg.shape[:2]
    short = min(h, w)
    side = int(np.clip(round(rng.uniform(p.bg_crop_scale.lo, p.bg_crop_scale.hi) * short), 1, short))
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    out = bg[y0 : y0 + side, x0 : x0 + side, :3]

    swap = rng.random() < p.bg_channel_swap_p
    perm = rng.permutation(3) if swap else np.arange(3)
    flip_h = bool(rng.random() < p.bg_flip_p)
    flip_v = bool(rng.random() < p.bg_flip_p)
    rotate = rng.random() < p.bg_rot90_p
    k = int(rng.integers(1, 4)) if rotate else 0

    out = out[..., perm]
    if flip_h:
        out = out[:, ::-1]
    if flip_v:
        out = out[::-1]
    out = np.rot90(out, k)
    out = np.ascontiguousarray(out)
    if side != size:
        out = _resize(out, (size, size), shrink=side > size)
    aug: dict[str, float | int | str | bool] = {
        "bg_crop_x0": x0, "bg_crop_y0": y0, "bg_crop_side": side,
        "bg_channel_perm": "".join(str(int(c)) for c in perm),
        "bg_flip_h": flip_h, "bg_flip_v": flip_v, "bg_rot90_k": k,
    }
    return out, aug


def _premultiplied_resize(rgb: np.ndarray, alpha: np.ndarray, size: tuple[int, int], shrink: bool) -> tuple[np.ndarray, np.ndarray]:
    """Resize straight colour under an alpha without the dark fringe of the black render
    background: resample colour×alpha and alpha, divide back. Float32 in, float32 out."""
    a = _resize(alpha, size, shrink=shrink)
    pm = _resize(rgb * alpha[..., None], size, shrink=shrink)
    a = np.clip(a, 0.0, 1.0)
    colour = np.where(a[..., None] > 1e-4, pm / np.maximum(a[..., None], 1e-4), 0.0)
    return np.clip(colour, 0.0, 255.0).astype(np.float32), a


def place_object(
    layers: RenderLayers, rng: np.random.Generator, scale: float, size: int
) -> tuple[RenderLayers, dict[str, float | int | str | bool]]:
    """Crop ``layers`` to the mask's bbox (+ a small margin), rescale so the bbox's longest
    side is ``scale * size`` px (capped so the whole soft mask fits), and paste at a uniformly
    random position with the whole object inside the (size, size) canvas.

    Colour and mask are resampled linearly (the mask becomes a soft alpha; colour is
    resampled premultiplied so no black fringe appears); semantic and depth with nearest
    neighbour. Returns the placed layers (zeros outside the object) and the sampled values.
    """
    ys, xs = np.nonzero(layers.mask)
    if len(xs) == 0:
        raise ValueError("place_object: the render's mask is empty; nothing to place")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    longest = max(x1 - x0, y1 - y0)
    f = min(scale * size / longest, size / longest)
    if abs(f - 1.0) < 1e-6:
        f = 1.0
    h, w = layers.mask.shape
    for _ in range(8):
        margin = PLACE_MARGIN_PX if f >= 1.0 else max(PLACE_MARGIN_PX, math.ceil(PLACE_MARGIN_PX / f))
        cx0, cy0 = max(0, x0 - margin), max(0, y0 - margin)
        cx1, cy1 = min(w, x1 + margin), min(h, y1 + margin)
        rgb = layers.rgb[cy0:cy1, cx0:cx1].astype(np.float32)
        alpha = layers.mask[cy0:cy1, cx0:cx1].astype(np.float32) / 255.0
        sem = layers.semantic[cy0:cy1, cx0:cx1]
        depth = layers.depth[cy0:cy1, cx0:cx1]
        if f != 1.0:
            dsize = (max(1, round((cx1 - cx0) * f)), max(1, round((cy1 - cy0) * f)))
            rgb, alpha = _premultiplied_resize(rgb, alpha, dsize, shrink=f < 1.0)
            sem = cv2.resize(sem, dsize, interpolation=cv2.INTER_NEAREST_EXACT)
            depth = cv2.resize(depth, dsize, interpolation=cv2.INTER_NEAREST_EXACT)
        alpha_u8 = np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)
        # Place by the support of the resampled alpha, so every object pixel lands inside.
        ys, xs = np.nonzero(alpha_u8)
        tx0, tx1, ty0, ty1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        tw, th = tx1 - tx0, ty1 - ty0
        if max(tw, th) <= size:
            break
        # Linear upsampling spreads the soft edge by about a source pixel: shrink to fit.
        f *= (size - 0.5) / max(tw, th)
    else:
        raise ValueError(f"place_object: could not fit a {longest} px object into {size} px")
    px = int(rng.integers(0, size - tw + 1))
    py = int(rng.integers(0, size - th + 1))
    ox, oy = px - tx0, py - ty0  # canvas position of the crop's (0, 0)

    ch, cw = alpha.shape
    sx0, sy0 = max(0, -ox), max(0, -oy)
    sx1, sy1 = min(cw, size - ox), min(ch, size - oy)
    canvas = (slice(oy + sy0, oy + sy1), slice(ox + sx0, ox + sx1))
    src = (slice(sy0, sy1), slice(sx0, sx1))

    out_rgb = np.zeros((size, size, 3), np.uint8)
    out_mask = np.zeros((size, size), np.uint8)
    out_sem = np.zeros((size, size, 3), np.uint8)
    out_depth = np.zeros((size, size), np.float32)
    out_rgb[canvas] = np.where(alpha_u8[src][..., None] > 0, np.clip(np.round(rgb[src]), 0, 255), 0).astype(np.uint8)
    out_mask[canvas] = alpha_u8[src]
    out_sem[canvas] = sem[src]
    out_depth[canvas] = depth[src]
    placed = RenderLayers(rgb=out_rgb, mask=out_mask, semantic=out_sem, depth=out_depth)
    aug: dict[str, float | int | str | bool] = {
        "obj_scale": float(scale), "obj_resize": float(f),
        "obj_x0": px, "obj_y0": py, "obj_w": tw, "obj_h": th,
    }
    return placed, aug


def _extend_colour(obj: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Object colour defined everywhere: unchanged where alpha > 0, elsewhere the
    alpha-weighted Gaussian mean of nearby object colours (normalised convolution), so
    that a blurred alpha or a Poisson source never pulls in the black render background."""
    pm = cv2.GaussianBlur(obj * alpha[..., None], (0, 0), sigmaX=sigma)
    a = cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma)
    ext = pm / np.maximum(a[..., None], 1e-6)
    return np.where(alpha[..., None] > 0, obj, ext).astype(np.float32)


def _blur_object(obj: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the object alone (premultiplied, so the surround does not bleed in)."""
    pm = cv2.GaussianBlur(obj * alpha[..., None], (0, 0), sigmaX=sigma)
    a = cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma)
    blurred = pm / np.maximum(a[..., None], 1e-6)
    return np.where(alpha[..., None] > 0, blurred, obj).astype(np.float32)


def _fill_semantic(sem: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Semantic target non-zero exactly on ``inside``: nearest-neighbour resampling and the
    linearly resampled mask can disagree at the edge (or on thin parts); such pixels take
    the colour of the nearest semantic pixel, and everything outside is cleared."""
    coloured = sem.any(axis=2)
    if (inside & ~coloured).any() and coloured.any():
        iy, ix = ndimage.distance_transform_edt(~coloured, return_distances=False, return_indices=True)
        sem = np.where(coloured[..., None], sem, sem[iy, ix])
    return np.where(inside[..., None], sem, 0).astype(np.uint8)


def _band(hard: np.ndarray, sigma: float) -> np.ndarray:
    """Pixels within ~2 sigma of the object boundary, on both sides of it."""
    r = max(1, math.ceil(2.0 * sigma))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m = hard.astype(np.uint8)
    return (cv2.dilate(m, kernel) > 0) & ~(cv2.erode(m, kernel) > 0)


def _poisson_ok(hard: np.ndarray, size: int) -> bool:
    n = int(np.count_nonzero(hard))
    if n < POISSON_MIN_PIXELS:
        return False
    x0, y0, x1, y1 = mask_bbox(hard)
    b = POISSON_BORDER_PX
    return x0 >= b and y0 >= b and x1 <= size - b and y1 <= size - b


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def composite(
    layers: RenderLayers, background: np.ndarray, rng: np.random.Generator, p: CompositeParams
) -> Composite:
    """Paste one render on one background (seed 003 §3.1), see the module docstring.

    layers: a render (any size); background: (H, W, 3) uint8 RGB; the output side is
    ``p.image_size``. All randomness comes from ``rng``, in a fixed order of draws.
    """
    size = p.image_size
    aug: dict[str, float | int | str | bool] = {}
    bg, a = augment_background(background, rng, p, size)
    aug.update(a)
    scale = float(rng.uniform(p.object_scale.lo, p.object_scale.hi))
    placed, a = place_object(layers, rng, scale, size)
    aug.update(a)

    j = p.light_color_jitter
    jitter = 1.0 + rng.uniform(-j, j, size=3)
    noise_std = float(rng.uniform(p.object_noise_std.lo, p.object_noise_std.hi))
    noise = rng.standard_normal((size, size, 3), dtype=np.float32)
    obj_sigma = float(rng.uniform(p.object_blur_sigma.lo, p.object_blur_sigma.hi))
    border_sigma = float(rng.uniform(p.border_blur_sigma.lo, p.border_blur_sigma.hi))
    modes = [m for m in BLEND_MODES if p.blend.get(m, 0.0) > 0]  # type: ignore[call-overload]
    probs = np.array([p.blend[m] for m in modes], np.float64)  # type: ignore[index]
    sampled = str(modes[int(rng.choice(len(modes), p=probs / probs.sum()))])

    alpha = placed.mask.astype(np.float32) / 255.0
    obj = placed.rgb.astype(np.float32) * jitter.astype(np.float32)
    if noise_std > 0:
        obj = obj + noise * np.float32(noise_std * 255.0)
    if obj_sigma > 0:
        obj = _blur_object(obj, alpha, obj_sigma)
    obj = np.clip(obj, 0.0, 255.0)
    bg_f = bg.astype(np.float32)
    hard = placed.mask > 127

    mode = sampled
    if mode == "poisson" and not _poisson_ok(hard, size):
        mode = "blurred_alpha"
    if mode == "poisson":
        src = np.clip(np.round(_extend_colour(obj, alpha, 2.0)), 0, 255).astype(np.uint8)
        clone_mask = cv2.dilate(hard.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
        x0, y0, x1, y1 = mask_bbox(clone_mask)
        # seamlessClone centres the mask's bounding rect on ``center``: (x0 + w/2, y0 + h/2)
        # keeps the clone where the object already is.
        center = (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)
        out = cv2.seamlessClone(src, bg, clone_mask, center, cv2.NORMAL_CLONE).astype(np.float32)
    else:
        if mode == "blurred_alpha" and border_sigma > 0:
            a_eff = cv2.GaussianBlur(alpha, (0, 0), sigmaX=border_sigma)
            obj_ext = _extend_colour(obj, alpha, max(2.0, 2.0 * border_sigma))
        else:
            a_eff, obj_ext = alpha, obj
        out = a_eff[..., None] * obj_ext + (1.0 - a_eff[..., None]) * bg_f

    if border_sigma > 0 and hard.any():
        band = _band(hard, border_sigma)
        out = np.where(band[..., None], cv2.GaussianBlur(out, (0, 0), sigmaX=border_sigma), out)
    image = np.clip(np.round(out), 0, 255).astype(np.uint8)

    clean = alpha * _grey(placed.rgb).astype(np.float32) + (1.0 - alpha) * 255.0
    aug.update({
        "light_jitter_r": float(jitter[0]), "light_jitter_g": float(jitter[1]), "light_jitter_b": float(jitter[2]),
        "noise_std": noise_std, "object_blur_sigma": obj_sigma, "border_blur_sigma": border_sigma,
        "blend": mode, "blend_sampled": sampled, "poisson_fallback": sampled == "poisson" and mode != "poisson",
    })
    return Composite(
        image=image,
        mask=placed.mask,
        semantic=_fill_semantic(placed.semantic, hard),
        clean=np.clip(np.round(clean), 0, 255).astype(np.uint8),
        image_grey=_grey(image),
        bbox=mask_bbox(hard),
        aug=aug,
    )
