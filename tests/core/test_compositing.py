"""Compositing (seed 003 §3.1): exact alpha maths, alignment of targets, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.compositing import RenderLayers, augment_background, composite, place_object
from core.params import CompositeParams, Range

S = 64
RED = np.array([220, 30, 40], np.uint8)
BG = np.array([10, 120, 200], np.uint8)


def disc_layers(size: int = 48, radius: int = 14, alpha: int = 255, colour=RED) -> RenderLayers:
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2
    mask = np.where(inside, alpha, 0).astype(np.uint8)
    rgb = np.where(inside[..., None], colour, 0).astype(np.uint8)
    depth = np.where(inside, 2.0, 0.0).astype(np.float32)
    semantic = np.where(inside[..., None], np.array([145, 30, 180], np.uint8), 0).astype(np.uint8)
    return RenderLayers(rgb=rgb, mask=mask, semantic=semantic, depth=depth)


def plain_params(**kw) -> CompositeParams:
    """Every augmentation off; the object keeps its size (scale = 29 px / 64 px)."""
    base = dict(
        image_size=S, bg_channel_swap_p=0.0, bg_flip_p=0.0, bg_rot90_p=0.0,
        bg_crop_scale=Range(lo=1.0, hi=1.0), object_scale=Range(lo=29 / S, hi=29 / S),
        object_noise_std=Range(lo=0.0, hi=0.0), object_blur_sigma=Range(lo=0.0, hi=0.0),
        border_blur_sigma=Range(lo=0.0, hi=0.0), light_color_jitter=0.0, blend={"alpha": 1.0},
    )
    base.update(kw)
    return CompositeParams(**base)


def flat_bg(size: int = S) -> np.ndarray:
    return np.broadcast_to(BG, (size, size, 3)).copy()


def textured_bg(size: int = S) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_hard_alpha_is_exact():
    bg = textured_bg()
    c = composite(disc_layers(), bg, np.random.default_rng(0), plain_params())
    obj, out = c.mask == 255, c.mask == 0
    assert obj.sum() > 400 and out.sum() > 0
    assert np.all(c.image[obj] == RED)
    assert np.array_equal(c.image[out], bg[out])
    assert c.aug["obj_resize"] == 1.0 and c.aug["blend"] == "alpha"


def test_soft_alpha_half():
    bg = flat_bg()
    c = composite(disc_layers(alpha=128), bg, np.random.default_rng(1), plain_params())
    half = c.mask == 128
    assert half.sum() > 400
    expected = 128 / 255 * RED.astype(float) + (1 - 128 / 255) * BG.astype(float)
    assert np.abs(c.image[half].astype(float) - expected).max() <= 1.0
    assert np.abs(c.image[half].astype(float) - (0.5 * RED + 0.5 * BG)).max() <= 1.5


def test_bbox_semantic_clean_alignment():
    c = composite(disc_layers(), textured_bg(), np.random.default_rng(2), plain_params(object_scale=Range(lo=0.8, hi=0.8)))
    ys, xs = np.nonzero(c.mask > 127)
    assert c.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert max(c.bbox[2] - c.bbox[0], c.bbox[3] - c.bbox[1]) == pytest.approx(0.8 * S, abs=2)
    assert np.array_equal(c.semantic.any(axis=2), c.mask > 127)
    assert np.all(c.clean[c.mask == 0] == 255)
    assert c.clean.shape == c.image_grey.shape == (S, S) and c.clean.dtype == np.uint8
    assert c.clean[c.mask == 255].max() < 255  # the object shows in the clean render


def test_placement_inside_canvas_and_resized_colour_exact():
    layers = disc_layers(size=48, radius=20)
    for seed in range(10):
        placed, aug = place_object(layers, np.random.default_rng(seed), 0.9, 32)
        ys, xs = np.nonzero(placed.mask)
        assert xs.min() >= 0 and xs.max() < 32 and ys.min() >= 0 and ys.max() < 32
        # premultiplied resampling: a uniform object keeps its colour up to its soft edge
        assert np.abs(placed.rgb[placed.mask > 0].astype(int) - RED).max() <= 1
        assert aug["obj_w"] <= 32 and aug["obj_h"] <= 32


def test_determinism_and_json_aug():
    p = CompositeParams(image_size=S)
    layers, bg = disc_layers(), textured_bg(100)
    a = composite(layers, bg, np.random.default_rng(7), p)
    b = composite(layers, bg, np.random.default_rng(7), p)
    c = composite(layers, bg, np.random.default_rng(8), p)
    for f in ("image", "mask", "semantic", "clean", "image_grey"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.aug == b.aug and a.bbox == b.bbox
    assert a.aug != c.aug
    json.dumps(a.aug)
    assert all(type(v) in (int, float, str, bool) for v in a.aug.values())
    for key in ("bg_crop_x0", "bg_crop_side", "bg_channel_perm", "bg_flip_h", "bg_flip_v", "bg_rot90_k",
                "obj_scale", "obj_x0", "obj_y0", "noise_std", "object_blur_sigma", "border_blur_sigma",
                "blend", "light_jitter_r", "light_jitter_g", "light_jitter_b"):
        assert key in a.aug, key


def test_blurred_alpha_changes_only_near_boundary():
    bg = textured_bg()
    kw = dict(border_blur_sigma=Range(lo=1.0, hi=1.0))
    hard = composite(disc_layers(), bg, np.random.default_rng(3), plain_params(**kw, blend={"alpha": 1.0}))
    soft = composite(disc_layers(), bg, np.random.default_rng(3), plain_params(**kw, blend={"blurred_alpha": 1.0}))
    assert soft.aug["blend"] == "blurred_alpha" and np.array_equal(hard.mask, soft.mask)
    diff = np.any(hard.image != soft.image, axis=2)
    assert diff.any()
    obj = hard.mask > 127
    yy, xx = np.nonzero(obj)
    dist = np.full(obj.shape, np.inf)
    # distance of each pixel to the object's boundary, by brute force on 64x64
    edge = obj & ~np.roll(obj, 1, 0) | obj & ~np.roll(obj, -1, 0) | obj & ~np.roll(obj, 1, 1) | obj & ~np.roll(obj, -1, 1)
    ey, ex = np.nonzero(edge)
    gy, gx = np.mgrid[0:S, 0:S]
    dist = np.min(np.hypot(gy[..., None] - ey, gx[..., None] - ex), axis=2)
    assert dist[diff].max() <= 5.0
    # the border blur itself only touches a band around the boundary
    off = composite(disc_layers(), bg, np.random.default_rng(3), plain_params(blend={"alpha": 1.0}))
    changed = np.any(off.image != hard.image, axis=2)
    assert changed.any() and dist[changed].max() <= 3.0


def test_object_augmentations_recorded_and_applied():
    p = plain_params(light_color_jitter=0.2, object_noise_std=Range(lo=0.03, hi=0.03),
                     object_blur_sigma=Range(lo=0.5, hi=0.5))
    bg = textured_bg()
    c = composite(disc_layers(), bg, np.random.default_rng(4), p)
    out = c.mask == 0
    assert np.array_equal(c.image[out], bg[out])  # no border blur: background untouched
    assert c.image[c.mask == 255].std(axis=0).max() > 2  # noise on the object
    assert c.aug["noise_std"] == pytest.approx(0.03) and abs(c.aug["light_jitter_r"] - 1) <= 0.2


def test_background_augmentation():
    bg = textured_bg(80)
    p = plain_params(bg_channel_swap_p=1.0, bg_flip_p=1.0, bg_rot90_p=1.0, bg_crop_scale=Range(lo=0.5, hi=0.5))
    out, aug = augment_background(bg, np.random.default_rng(5), p, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert aug["bg_crop_side"] == 40 and aug["bg_flip_h"] and aug["bg_flip_v"] and aug["bg_rot90_k"] in (1, 2, 3)
    assert sorted(aug["bg_channel_perm"]) == ["0", "1", "2"]
    # reproduce it by hand
    x0, y0, s = aug["bg_crop_x0"], aug["bg_crop_y0"], aug["bg_crop_side"]
    ref = bg[y0 : y0 + s, x0 : x0 + s][..., [int(ch) for ch in aug["bg_channel_perm"]]][::-1, ::-1]
    ref = np.rot90(ref, aug["bg_rot90_k"])
    import cv2

    ref = cv2.resize(np.ascontiguousarray(ref), (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out, ref)
    same, aug0 = augment_background(bg, np.random.default_rng(5), plain_params(), 80)
    assert np.array_equal(same, bg) and aug0["bg_channel_perm"] == "012" and aug0["bg_rot90_k"] == 0


def test_poisson_runs_and_falls_back():
    bg = textured_bg()
    layers = disc_layers(colour=np.array([200, 180, 40], np.uint8))
    c = composite(layers, bg, np.random.default_rng(6), plain_params(blend={"poisson": 1.0}))
    assert c.aug["blend"] == "poisson" and c.aug["poisson_fallback"] is False
    assert c.image.shape == (S, S, 3)
    far = c.mask == 0
    # Poisson keeps the background away from the object
    ys, xs = np.nonzero(c.mask)
    gy, gx = np.mgrid[0:S, 0:S]
    away = far & ((gx < xs.min() - 3) | (gx > xs.max() + 3) | (gy < ys.min() - 3) | (gy > ys.max() + 3))
    assert np.array_equal(c.image[away], bg[away])
    # an object filling the canvas touches the border: fall back to blurred alpha
    big = composite(layers, bg, np.random.default_rng(6), plain_params(blend={"poisson": 1.0}, object_scale=Range(lo=1.0, hi=1.0)))
    assert big.aug["blend"] == "blurred_alpha" and big.aug["blend_sampled"] == "poisson" and big.aug["poisson_fallback"] is True
    # a tiny object: fall back too
    tiny = composite(disc_layers(radius=2), bg, np.random.default_rng(6), plain_params(blend={"poisson": 1.0}, object_scale=Range(lo=0.08, hi=0.08)))
    assert tiny.aug["poisson_fallback"] is True


@pytest.mark.parametrize("w", [20, 21])
def test_poisson_keeps_the_object_in_place(w):
    """seamlessClone centres the mask's rect on ``center``: the clone must not shift."""
    mask = np.zeros((48, 48), np.uint8)
    mask[10:25, 5 : 5 + w] = 255
    yy, xx = np.mgrid[0:48, 0:48]
    rgb = np.repeat((((xx // 3 + yy // 3) % 2) * 150 + 50).astype(np.uint8)[..., None], 3, axis=2)
    rgb[mask == 0] = 0
    layers = RenderLayers(rgb, mask, np.repeat(mask[..., None] // 255, 3, axis=2), (mask > 0).astype(np.float32))
    p = dict(object_scale=Range(lo=w / S, hi=w / S))
    a = composite(layers, flat_bg(), np.random.default_rng(0), plain_params(**p)).image[..., 0].astype(float)
    q = composite(layers, flat_bg(), np.random.default_rng(0), plain_params(**p, blend={"poisson": 1.0})).image[..., 0].astype(float)
    inner = np.zeros((S, S), bool)
    ys, xs = np.nonzero(a != BG[0])
    inner[ys.min() + 2 : ys.max() - 1, xs.min() + 2 : xs.max() - 1] = True

    def err(dx: int, dy: int) -> float:
        shifted = np.roll(q, (dy, dx), axis=(0, 1))[inner]
        return float(np.abs((shifted - shifted.mean()) - (a[inner] - a[inner].mean())).mean())

    assert err(0, 0) < min(err(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0))


def test_empty_mask_is_an_error():
    layers = disc_layers(alpha=0)
    with pytest.raises(ValueError, match="empty"):
        composite(layers, flat_bg(), np.random.default_rng(0), plain_params())


def test_render_layers_shape_check():
    l = disc_layers()
    with pytest.raises(ValueError, match="depth"):
        RenderLayers(rgb=l.rgb, mask=l.mask, semantic=l.semantic, depth=l.depth[:10])
