"""Backgrounds: scikit-image photos, procedural clutter, user folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.backgrounds import (
    SKIMAGE_HELDOUT,
    SKIMAGE_TRAIN,
    load_backgrounds,
    load_folder,
    procedural_clutter,
    skimage_photos,
)
from core.io import write_png
from core.params import BackgroundParams

SUN2012 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "backgrounds" / "sun2012"


def test_skimage_train_and_heldout_are_disjoint_and_load():
    assert not set(SKIMAGE_TRAIN) & set(SKIMAGE_HELDOUT)
    assert len(SKIMAGE_TRAIN) >= 8 and len(SKIMAGE_HELDOUT) >= 2
    photos = skimage_photos(SKIMAGE_TRAIN + SKIMAGE_HELDOUT, size=48)
    assert [b.name for b in photos] == [f"skimage:{n}" for n in SKIMAGE_TRAIN + SKIMAGE_HELDOUT]
    for b in photos:
        assert b.image.shape == (48, 48, 3) and b.image.dtype == np.uint8
        assert b.image.std() > 1.0, b.name  # a real picture, not a blank


def test_skimage_unknown_name():
    with pytest.raises(ValueError, match="logo"):
        skimage_photos(("logo",))


def test_procedural_clutter_deterministic():
    a = procedural_clutter(np.random.default_rng(3), 64)
    b = procedural_clutter(np.random.default_rng(3), 64)
    c = procedural_clutter(np.random.default_rng(4), 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() > 10  # cluttered, not flat


def test_load_folder_missing(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_folder(missing, 32)


def test_load_folder_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=rf"{tmp_path}: no background images"):
        load_folder(tmp_path, 32)


def test_load_folder_corrupt(tmp_path):
    write_png(tmp_path / "a.png", np.full((10, 20, 3), 7, np.uint8))
    (tmp_path / "b.JPG").write_bytes(b"garbage, not a jpeg")
    with pytest.raises(ValueError, match="b.JPG"):
        load_folder(tmp_path, 32)


def test_load_folder_sorted_case_insensitive(tmp_path):
    (tmp_path / "sub").mkdir()
    write_png(tmp_path / "b.PNG", np.full((10, 20, 3), 7, np.uint8))
    write_png(tmp_path / "a.png", np.zeros((30, 20), np.uint8))
    write_png(tmp_path / "sub" / "c.png", np.zeros((5, 5, 3), np.uint8))
    bgs = load_folder(tmp_path, 16)
    assert [b.name for b in bgs] == ["dir:a.png", "dir:b.PNG", "dir:sub/c.png"]
    assert all(b.image.shape == (16, 16, 3) and b.image.dtype == np.uint8 for b in bgs)
    assert (bgs[1].image == 7).all()


def test_load_backgrounds(tmp_path):
    write_png(tmp_path / "x.png", np.full((40, 40, 3), 100, np.uint8))
    p = BackgroundParams(skimage=True, procedural=3, dir=str(tmp_path), size=32)
    bgs = load_backgrounds(p, seed=1)
    names = [b.name for b in bgs]
    assert names == [f"skimage:{n}" for n in SKIMAGE_TRAIN] + ["clutter:0000", "clutter:0001", "clutter:0002", "dir:x.png"]
    again = load_backgrounds(p, seed=1)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(bgs, again))
    other = load_backgrounds(p, seed=2)
    assert not np.array_equal(bgs[len(SKIMAGE_TRAIN)].image, other[len(SKIMAGE_TRAIN)].image)


def test_a_missing_folder_is_skipped_unless_required(tmp_path, caplog):
    p = BackgroundParams(skimage=False, procedural=2, dir=str(tmp_path / "sun"), size=32)
    with caplog.at_level("WARNING"):
        assert [b.name for b in load_backgrounds(p, seed=0)] == ["clutter:0000", "clutter:0001"]
    assert "skipped: background folder not found" in caplog.text and str(tmp_path / "sun") in caplog.text
    with pytest.raises(FileNotFoundError, match="background folder not found"):
        load_backgrounds(p.model_copy(update={"dir_required": True}), seed=0)


def test_load_backgrounds_empty():
    with pytest.raises(ValueError, match="procedural"):
        load_backgrounds(BackgroundParams(skimage=False, procedural=0, dir=None), seed=0)


@pytest.mark.shared_data
def test_sun2012_folder():
    if not SUN2012.is_dir():
        pytest.skip(f"real data not available: {SUN2012} not found (../shared/data is optional)")
    bgs = load_folder(SUN2012, 64)
    assert len(bgs) == 18
    assert all(b.image.shape == (64, 64, 3) and b.name.startswith("dir:sun_") for b in bgs)
