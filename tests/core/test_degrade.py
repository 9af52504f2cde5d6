"""Proxy-real degradations (SPEC §3)."""

from __future__ import annotations

import numpy as np
import pytest

from core.degrade import add_occluders, jpeg, motion_blur, sensor_noise, truncate
from core.rendering import mask_bbox

S = 64


def scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    mask = np.zeros((S, S), np.uint8)
    mask[20:44, 16:48] = 255
    image[mask > 0] = (200, 40, 40)
    return image, mask, mask_bbox(mask)


@pytest.mark.parametrize("grey", [False, True])
def test_shapes_and_dtypes(grey):
    image, mask, _ = scene()
    if grey:
        image = image[..., 0].copy()
    rng = np.random.default_rng(0)
    for out in (sensor_noise(image, rng, 0.02), motion_blur(image, rng, 7, 30.0), jpeg(image, 50),
                add_occluders(image, mask, rng)[0]):
        assert out.shape == image.shape and out.dtype == np.uint8


def test_jpeg_low_quality_differs():
    image, _, _ = scene()
    assert not np.array_equal(jpeg(image, 10), image)
    smooth = np.full((S, S, 3), (30, 90, 200), np.uint8)
    assert np.abs(jpeg(smooth, 95).astype(int) - smooth).max() <= 3  # colour order kept


def test_sensor_noise():
    image, _, _ = scene()
    out = sensor_noise(image, np.random.default_rng(1), 0.03)
    d = out.astype(float) - image
    assert 3 < d.std() < 15
    assert np.array_equal(out, sensor_noise(image, np.random.default_rng(1), 0.03))
    assert np.array_equal(sensor_noise(image, np.random.default_rng(1), 0.0), image)


def test_motion_blur_direction():
    image = np.zeros((S, S), np.uint8)
    image[32, 32] = 255
    out = motion_blur(image, np.random.default_rng(0), 9, 0.0)
    ys, xs = np.nonzero(out)
    assert set(ys) == {32} and xs.max() - xs.min() >= 6  # horizontal streak
    out = motion_blur(image, np.random.default_rng(0), 9, 90.0)
    ys, xs = np.nonzero(out)
    assert set(xs) == {32} and ys.max() - ys.min() >= 6
    assert np.array_equal(motion_blur(image, np.random.default_rng(0), 1, 0.0), image)


@pytest.mark.parametrize("seed", range(8))
def test_truncate(seed):
    image, mask, bbox = scene(seed)
    out, out_mask, out_bbox, truncated = truncate(image, mask, bbox, np.random.default_rng(seed))
    assert out.shape == image.shape and out.dtype == np.uint8 and out_mask.shape == mask.shape
    assert truncated
    x0, y0, x1, y1 = out_bbox
    assert x0 == 0 or y0 == 0 or x1 == S or y1 == S
    assert out_bbox == mask_bbox(out_mask > 127)


def test_truncate_empty_mask():
    image, _, _ = scene()
    empty = np.zeros((S, S), np.uint8)
    out, m, b, truncated = truncate(image, empty, (0, 0, 0, 0), np.random.default_rng(0))
    assert not truncated and np.array_equal(out, image)


@pytest.mark.parametrize("seed", range(6))
def test_occluders(seed):
    image, mask, _ = scene(seed)
    out, fraction = add_occluders(image, mask, np.random.default_rng(seed), n_max=2)
    assert 0.0 < fraction <= 1.0
    assert not np.array_equal(out, image)
    _, none = add_occluders(image, np.zeros_like(mask), np.random.default_rng(seed))
    assert none == 0.0
