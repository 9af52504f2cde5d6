"""Viewpoint representations, losses and decodings (core/viewpoint.py) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.viewpoint import (Config, ViewpointNet, angle_targets, decode_regression, encode_regression,
                            flip_viewpoint, geometric_weights, huber, infer, joint_class_proba, loss, parse_method,
                            to_bins)


def test_parse_method():
    assert parse_method("classif") == parse_method("classif")
    m = parse_method("joint_reg3d_real")
    assert (m.representation, m.joint, m.real, m.needs_detector) == ("reg3d", True, True, False)
    assert parse_method("geom").needs_detector
    assert parse_method("detector").representation is None
    with pytest.raises(ValueError, match="unknown viewpoint method 'reg4d'"):
        parse_method("reg4d")


def test_encodings_by_hand():
    h = math.sqrt(3) / 2
    np.testing.assert_allclose(encode_regression(np.array([0.0, 90.0]), "reg3d"), [[0.5, 1.0, 0.5], [h, 0.0, -h]],
                               atol=1e-12)
    np.testing.assert_allclose(encode_regression(np.array([90.0]), "reg2d"), [[0.0, 1.0]], atol=1e-12)
    # the closest point of each curve: (1, 1) is 45 deg on the circle; a scaled reg3d code decodes to its angle
    np.testing.assert_allclose(decode_regression(np.array([[1.0, 1.0]]), "reg2d"), [45.0])
    np.testing.assert_allclose(decode_regression(3 * encode_regression(np.array([250.0]), "reg3d"), "reg3d"), [250.0])
    angles = np.arange(0.0, 360.0, 7.0)
    for rep in ("reg2d", "reg3d"):
        np.testing.assert_allclose(decode_regression(encode_regression(angles, rep), rep), angles, atol=1e-9)


def test_bins_and_flip():
    # 24 bins of 15 deg centred on 0: [352.5, 7.5) is bin 0
    np.testing.assert_array_equal(to_bins(np.array([0.0, 7.4, 7.5, 352.6, -10.0, 180.0]), 24), [0, 0, 1, 0, 23, 12])
    az, el, th = flip_viewpoint(np.array([30.0, 0.0]), np.array([10.0, -5.0]), np.array([20.0, 180.0]))
    np.testing.assert_allclose(az, [330.0, 0.0])
    np.testing.assert_allclose(el, [10.0, -5.0])
    np.testing.assert_allclose(th, [-20.0, 180.0])


def test_huber_and_geometric_weights():
    np.testing.assert_allclose(huber(torch.tensor([0.5, 2.0, -3.0])).numpy(), [0.125, 1.5, 2.5])
    w = geometric_weights(torch.tensor([0]), 360, 3.0)[0].numpy()
    np.testing.assert_allclose(w[[0, 3, 359, 180]], [1.0, math.exp(-1), math.exp(-1 / 3), math.exp(-60)], rtol=1e-6)


def test_joint_class_score_sums_bins_over_a_global_softmax():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0, 4.0, 2.0]]))  # 2 classes x 2 bins + background
    np.testing.assert_allclose(joint_class_proba(logits, 2, 2), [[3 / 12, 7 / 12, 2 / 12]])


@pytest.mark.parametrize("method", ["reg2d", "reg3d", "classif", "geom", "joint_reg2d", "joint_classif", "detector"])
def test_every_method_learns_a_toy_problem(method):
    """A feature that encodes the azimuth linearly: every method's loss falls and its
    prediction follows the angle (detection: objects vs background)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, c, g = 256, 4, 2
    az = rng.uniform(0, 360, n)
    x = np.zeros((n, c, g, g), np.float32)
    x[:, 0] = np.cos(np.radians(az))[:, None, None] + 1.5
    x[:, 1] = np.sin(np.radians(az))[:, None, None] + 1.5
    cls = np.where(np.arange(n) % 4 == 3, -1, 0)  # a quarter background: channel 2 set
    x[cls < 0, 2] = 2.0
    cfg = Config(method=method, categories=("chair",), channels=c, grid=g, bins=12, geom_bins=36, geom_sigma=1.0,
                 width=16, hidden=32, dropout=0.0)
    net = ViewpointNet(cfg)
    xt, ct = torch.from_numpy(x.reshape(n, -1)), torch.from_numpy(cls)
    targets = {a: angle_targets(torch.from_numpy(v), cfg) for a, v in
               (("azimuth", az), ("elevation", np.zeros(n)), ("theta", np.zeros(n)))} if cfg.m.representation else {}
    if method == "joint_classif":
        targets["azimuth"] = torch.where(ct >= 0, targets["azimuth"], -1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        total, _ = loss(net, xt, ct, targets)
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.5 * first
    proba, views = infer(net, xt)
    if proba is not None:
        assert ((proba[:, -1] > 0.5) == (cls < 0)).mean() > 0.95
    if views is not None:
        err = np.abs((views[cls >= 0, 0, 0] - az[cls >= 0] + 180) % 360 - 180)
        assert np.median(err) < 20
