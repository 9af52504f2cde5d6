"""Training data: model-level splits and the pose-based multi-triplet sets."""

from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from core.trainsets import TrainingData, TripletSampler, split_models, view_directions


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
