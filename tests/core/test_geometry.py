import numpy as np
import pytest

from core import geometry
from core.io import rng_for
from core.params import Params, RenderParams
from tests.conftest import shared_data


@pytest.mark.parametrize(("level", "count"), [(0, 12), (1, 42), (2, 162)])
def test_icosphere_vertex_counts(level, count):
    d = geometry.icosphere_directions(level)
    assert d.shape == (count, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)


def test_cap_cut_bounds_and_count():
    d = geometry.icosphere_directions(2)
    cut = geometry.cut_caps(d, -0.1, 0.6)
    assert cut[:, 2].min() >= -0.1 - 1e-9 and cut[:, 2].max() <= 0.6 + 1e-9
    expected = int(np.sum((d[:, 2] >= -0.1 - 1e-9) & (d[:, 2] <= 0.6 + 1e-9)))
    assert len(cut) == expected
    assert 0 < len(cut) < len(d)  # both caps removed
    assert (d[:, 2] > 0.6).any() and (d[:, 2] < -0.1).any()


def test_camera_center_pascal_convention():
    np.testing.assert_allclose(geometry.camera_center(0, 0, 2), [0, -2, 0], atol=1e-12)  # front
    np.testing.assert_allclose(geometry.camera_center(90, 0, 1), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(geometry.camera_center(0, 90, 1), [0, 0, 1], atol=1e-12)
    for az, el in [(0, 0), (37, 12), (250, -8), (359, 60)]:
        a, e = geometry.direction_to_angles(geometry.camera_center(az, el, 3.0))
        assert a == pytest.approx(az, abs=1e-9) and e == pytest.approx(el, abs=1e-9)


def test_projection_of_focal_point_is_principal_point():
    k = geometry.intrinsics(128, 35.0)
    for theta in (0.0, 30.0):
        r, t = geometry.world_to_camera(geometry.camera_center(40, 20, 2), np.array([0.1, 0, 0]), theta)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        uv = geometry.project(np.array([[0.1, 0, 0]]), k, r, t)
        np.testing.assert_allclose(uv[0], [64, 64], atol=1e-9)


def test_world_up_projects_upward_and_theta_rolls_counter_clockwise():
    k = geometry.intrinsics(128, 35.0)
    r, t = geometry.world_to_camera(geometry.camera_center(0, 0, 2), np.zeros(3), 0.0)
    up = geometry.project(np.array([[0, 0, 0.3]]), k, r, t)[0]
    assert up[1] < 64 and abs(up[0] - 64) < 1e-9  # image y grows downward
    r, t = geometry.world_to_camera(geometry.camera_center(0, 0, 2), np.zeros(3), 20.0)
    up = geometry.project(np.array([[0, 0, 0.3]]), k, r, t)[0]
    assert up[0] < 64  # counter-clockwise on screen: the top moves left


def test_sample_view_deterministic_and_in_range():
    p = RenderParams()
    dirs = geometry.view_directions(p, rng_for(0, "m"))
    a = [geometry.sample_view(p, i, dirs, rng_for(0, "m", i)) for i in range(50)]
    b = [geometry.sample_view(p, i, dirs, rng_for(0, "m", i)) for i in range(50)]
    assert a == b
    for v in a:
        d = v.distance / (p.closeup_distance_scale if v.closeup else 1.0)
        assert p.distance.lo - 1e-9 <= d <= p.distance.hi + 1e-9
        assert 0 <= v.azimuth < 360
        assert abs(v.theta) <= 3 * p.theta_sigma_deg + 1e-9
        if not v.closeup:
            assert np.sin(np.deg2rad(v.elevation)) <= p.z_max + 1e-9
            assert v.focal_shift == 0.0
    assert any(v.closeup for v in a) and not all(v.closeup for v in a)


def test_closeup_shift_follows_seed_000():
    p = RenderParams(closeup_fraction=1.0, focal_jitter=0.0)
    dirs = geometry.view_directions(p, rng_for(0, "m"))
    v = geometry.sample_view(p, 0, dirs, rng_for(0, "m", 0))
    r = geometry.MODEL_RADIUS
    c = geometry.camera_center(v.azimuth, v.elevation, r)
    expected = p.closeup_shift * (c - np.array([0, -r, 0]))
    np.testing.assert_allclose(v.focal, expected, atol=1e-9)


def test_viewpoint_prior_from_real_annotations():
    path = shared_data("pascal3d_annotations", "train.csv")
    prior = geometry.ViewpointPrior.from_csv(path)
    assert {"car", "chair", "aeroplane"} <= set(prior.angles)
    car = prior.angles["car"]
    assert (car[:, 0] >= 0).all() and (car[:, 0] < 360).all()
    assert (np.abs(car[:, 1]) <= 90).all()  # elevation unwrapped from (x+360)%360
    rng = np.random.default_rng(0)
    samples = np.array([prior.sample("car", rng) for _ in range(500)])
    assert abs(np.median(samples[:, 1]) - np.median(car[:, 1])) < 5


def test_viewpoint_prior_decodes_the_csv_encoding_and_borrows_classes(tmp_path):
    # The real file's layout: a header naming more columns than the rows have, Windows
    # paths, whole degrees stored as (x + 360) % 360 (elevation -5 reads 355).
    csv = tmp_path / "train.csv"
    csv.write_text(
        "imgPath,bboxTLX,bboxTLY,bboxBRX,bboxBRY,imgKeyptX,imgKeyptY,keyptClass,objClass,azimuthClass\n"
        "Images\\sofa_imagenet\\n1.JPEG,3,80,447,219,0,54,355,356\n"
        "Images\\sofa_pascal\\2008_1.jpg,3,80,447,219,0,10,5,2\n"
        "Images\\car_pascal\\2008_2.jpg,3,80,447,219,0,180,20,0\n"
    )
    prior = geometry.ViewpointPrior.from_csv(csv)
    np.testing.assert_allclose(prior.angles["sofa"], [[54, -5, -4], [10, 5, 2]])
    borrowing = geometry.ViewpointPrior(prior.angles, 0.0, class_map={"bed": "sofa", "desk": "nothing"})
    assert borrowing.has("bed") and not borrowing.has("desk") and not borrowing.has("bookcase")
    rng = np.random.default_rng(0)
    drawn = {borrowing.sample("bed", rng) for _ in range(50)}
    assert drawn == {(54.0, -5.0, -4.0), (10.0, 5.0, 2.0)}  # jitter 0: exactly the sofa annotations
    assert borrowing.summary()["sofa"]["n"] == 2


def test_viewpoint_prior_fraction_mixes_with_the_icosphere(tmp_path):
    angles = {"car": np.array([[123.0, 33.0, 0.0]])}
    p = Params().render
    directions = geometry.view_directions(p, rng_for(0))
    for fraction, expected in ((1.0, 1.0), (0.0, 0.0), (0.5, 0.5)):
        prior = geometry.ViewpointPrior(angles, 0.0, fraction=fraction)
        rng = np.random.default_rng(1)
        views = [geometry.sample_view(p, i, directions, rng, category="car", prior=prior) for i in range(400)]
        share = np.mean([v.azimuth == 123.0 and v.elevation == 33.0 for v in views])
        assert share == pytest.approx(expected, abs=0.08)


def test_viewpoint_prior_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="viewpoint annotations not found"):
        geometry.ViewpointPrior.from_csv(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d,e,f,g,h,i\nImages/car_pascal/x.jpg,1,2,3,4,0,10\n")
    with pytest.raises(ValueError, match="bad.csv"):
        geometry.ViewpointPrior.from_csv(bad)


def test_params_defaults_give_views():
    assert len(geometry.view_directions(Params().render, rng_for(0))) > 24
