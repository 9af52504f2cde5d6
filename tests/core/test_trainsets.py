"""Training data: model-level splits and the pose-based multi-triplet sets."""

from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from core.trainsets import TrainingData, TripletSampler, product_shot, split_models, view_directions


def frame(n_models: int = 4, views: int = 6, classes=("chair", "sofa", "bed")) -> pd.DataFrame:
    rows = [{"model_id": f"{c}-{m}", "category": c, "azimuth": 360.0 * v / views, "elevation": 10.0 + 5 * (v % 2)}
            for c in classes for m in range(n_models) for v in range(views)]
    return pd.DataFrame(rows)


def test_splits_hold_out_whole_models_per_class_and_are_stable():
    f = frame(n_models=10)
    split = split_models(f, val=0.1, test=0.2, seed=0)
    per_model = f.assign(split=split).groupby("model_id")["split"].nunique()
    assert (per_model == 1).all()  # never a model in two splits
    counts = f.assign(split=split).groupby(["category", "split"])["model_id"].nunique().unstack()
    assert (counts["test"] == 2).all() and (counts["val"] == 1).all() and (counts["train"] == 7).all()
    assert split.equals(split_models(f, val=0.1, test=0.2, seed=0))
    assert not split.equals(split_models(f, val=0.1, test=0.2, seed=1))
    two = frame(n_models=2)
    assert (split_models(two, val=0.5, test=0.5, seed=0).groupby(two["category"]).apply(
        lambda s: (s == "train").any())).all()  # a class always keeps a training model


def test_triplet_sets_follow_the_pose_rules():
    f = frame()
    labels = f["category"].map({"bed": 0, "chair": 1, "sofa": 2}).to_numpy()
    data = TrainingData(np.zeros((len(f), 4, 4, 3), np.uint8), None, labels, ("bed", "chair", "sofa"), f)
    rows = np.arange(0, len(f), 1)
    sampler = TripletSampler(data, rows, far_pose_deg=90.0, n_other=2)
    refs = np.arange(len(rows))
    pos, negs = sampler.sample(refs, np.random.default_rng(0), tries=32)
    dirs = view_directions(f)
    # positive: same model, another view, the nearest pose of that model
    assert (f["model_id"].to_numpy()[pos] == f["model_id"].to_numpy()[rows]).all() and (pos != rows).all()
    for r, p in zip(rows, pos, strict=True):
        same = np.flatnonzero((f["model_id"] == f["model_id"][r]).to_numpy() & (np.arange(len(f)) != r))
        assert dirs[p] @ dirs[r] == pytest.approx((dirs[same] @ dirs[r]).max())
    # first negative: same class, at least 90 degrees away; the others: other classes
    assert (labels[negs[:, 0]] == labels[rows]).all()
    assert (np.einsum("ij,ij->i", dirs[negs[:, 0]], dirs[rows]) <= np.cos(np.radians(90)) + 1e-9).all()
    assert (labels[negs[:, 1:]] != labels[rows][:, None]).all() and negs.shape == (len(rows), 3)


def test_a_product_shot_frames_the_object_on_a_plain_background():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 250  # a red object wherever the mask says
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    shot = product_shot(rgb, mask, (10, 10, 30, 30), margin=0.25, grey=100.0, size=30, stretch=True)
    assert shot.shape == (30, 30, 3) and shot.dtype == np.uint8
    # the crop is the box grown by a quarter of its side (5 px) on each side: 30 x 30 px
    assert (shot[0, 0] == 100).all() and (shot[-1, -1] == 100).all()  # background in the margin
    assert tuple(shot[15, 15]) == (250, 0, 0)  # the object in the middle
    wide = np.zeros((40, 40), np.uint8)
    wide[18:22, 5:35] = 255  # a flat object: 30 x 4 px
    padded = product_shot(rgb, wide, (5, 18, 35, 22), margin=0.0, grey=100.0, size=30, stretch=False)
    stretched = product_shot(rgb, wide, (5, 18, 35, 22), margin=0.0, grey=100.0, size=30, stretch=True)
    assert (padded[:10] == 100).all() and tuple(padded[15, 15]) == (250, 0, 0)  # padded above and below
    # stretched, the object (soft-edged over a pixel) fills the frame's height
    assert (stretched[:, 15, 0] > 200).mean() > 0.6 and (padded[:, 15, 0] > 200).mean() < 0.2


def test_a_render_with_an_empty_box_is_an_error_naming_it(tmp_path):
    from core.io import write_manifest, write_png
    from core.params import ProductShotParams
    from core.trainsets import load_product_shots

    rows = []
    for i, (cls, box) in enumerate((("chair", (2, 2, 10, 10)), ("sofa", (5, 5, 5, 9)))):
        write_png(tmp_path / f"{i}_rgb.png", np.full((16, 16, 3), 90, np.uint8))
        write_png(tmp_path / f"{i}_mask.png", np.full((16, 16), 255, np.uint8))
        rows.append({"sample_id": f"{cls}-v0", "model_id": cls, "category": cls, "rgb": f"{i}_rgb.png",
                     "mask": f"{i}_mask.png", "bbox_x0": box[0], "bbox_y0": box[1], "bbox_x1": box[2], "bbox_y1": box[3]})
    write_manifest(pd.DataFrame(rows), tmp_path / "manifest.parquet")
    with pytest.raises(ValueError, match=r"1_rgb\.png: the object's box \(5, 5, 5, 9\) is empty"):
        load_product_shots(tmp_path, ("chair", "sofa"), 8, ProductShotParams(), stretch=True, val=0, test=0, seed=0)
