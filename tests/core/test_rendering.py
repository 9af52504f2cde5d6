"""The real pyrender offscreen renderer (EGL or OSMesa), one per test module."""

import numpy as np
import pytest
import trimesh

from core import geometry, meshes
from core.params import ALL_CLASSES, LightParams
from core.rendering import SEMANTIC_COLORS, LightSample, Renderer, mask_bbox, sample_light, semantic_target

SIZE = 96
LIGHT = LightSample(ambient=0.3, diffuse=3.0, specular=0.2, color=(1.0, 1.0, 1.0), azimuth=20.0, elevation=45.0)


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(SIZE, 35.0)
    yield r
    r.close()


def view(az=30.0, el=20.0, theta=0.0, distance=1.6, focal=(0.0, 0.0, 0.0)):
    return geometry.View(azimuth=az, elevation=el, theta=theta, distance=distance, focal=focal,
                         closeup=False, focal_shift=0.0)


def sphere_scene(radius=0.3):
    return trimesh.Scene(trimesh.creation.icosphere(subdivisions=4, radius=radius))


def box_scene():
    body = trimesh.creation.box((0.3, 0.6, 0.2))
    body.visual.face_colors = (200, 40, 40, 255)
    nose = trimesh.creation.box((0.1, 0.1, 0.1))
    nose.visual.face_colors = (40, 200, 40, 255)
    nose.apply_translation((0, -0.35, 0))
    scene = trimesh.Scene()
    scene.add_geometry(body, geom_name="body")
    scene.add_geometry(nose, geom_name="nose")
    return meshes.normalize(meshes.bake(scene))


def test_depth_of_sphere_matches_analytic(renderer):
    r, d = 0.3, 1.5
    renderer.set_model(sphere_scene(r), "bottle", "grey")
    res = renderer.render(view(az=0.0, el=0.0, distance=d), [LIGHT])
    k = res.k
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    x = (u + 0.5 - k[0, 2]) / k[0, 0]
    y = (v + 0.5 - k[1, 2]) / k[1, 1]
    a = 1 + x**2 + y**2
    disc = d**2 - a * (d**2 - r**2)
    hit = disc > 0
    z = np.where(hit, (d - np.sqrt(np.clip(disc, 0, None))) / a, 0.0)
    interior = hit & (disc > 0.5 * r**2)  # away from the silhouette (steep depth)
    assert interior.sum() > 200
    np.testing.assert_allclose(res.depth[interior], z[interior], atol=4e-3)
    assert res.depth[~hit & (np.abs(disc) > 0.2 * r**2)].max(initial=0) == 0  # background is 0
    assert res.depth.min() == 0 and res.depth.dtype == np.float32
    assert abs(res.depth[SIZE // 2, SIZE // 2] - (d - r)) < 4e-3


def test_bbox_equals_mask_extent_and_projection(renderer):
    scene = box_scene()
    renderer.set_model(scene, "car", "part_colors")
    verts = np.concatenate([g.vertices for g in scene.geometry.values()])
    for theta in (0.0, 25.0):
        res = renderer.render(view(theta=theta), [LIGHT])
        ys, xs = np.nonzero(res.mask)
        assert res.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert set(np.unique(res.mask)) == {0, 255}
        assert ((res.mask > 0) == (res.depth > 0)).all()
        uv = geometry.project(verts, res.k, res.r, res.t)  # the stored camera reproduces the image
        assert np.allclose(uv.min(0), res.bbox[:2], atol=1.5)
        assert np.allclose(uv.max(0), res.bbox[2:], atol=1.5)


def test_front_view_shows_front(renderer):
    renderer.set_model(box_scene(), "car", "part_colors")  # green nose at -y, the canonical front
    front = renderer.render(view(az=0.0, el=0.0, distance=1.6), [LIGHT]).rgb[SIZE // 2, SIZE // 2]
    back = renderer.render(view(az=180.0, el=0.0, distance=1.6), [LIGHT]).rgb[SIZE // 2, SIZE // 2]
    assert front[1] > front[0] and back[0] > back[1]


def test_semantic_colours_per_class(renderer):
    assert len(set(SEMANTIC_COLORS.values())) == len(ALL_CLASSES)
    renderer.set_model(box_scene(), "chair", "grey")
    for category in ("chair", "car", "bed"):
        renderer._category = category
        res = renderer.render(view(), [LIGHT])
        obj = res.mask > 0
        assert (res.semantic[~obj] == 0).all()
        color = np.array(SEMANTIC_COLORS[category], float)
        pixels = res.semantic[obj].astype(float)
        # every object pixel is the class colour scaled by a depth shade in [0.4, 1]
        scale = pixels.sum(1) / color.sum()
        assert scale.min() >= 0.39 and scale.max() <= 1.0 + 1e-6
        np.testing.assert_allclose(pixels, scale[:, None] * color[None, :], atol=2.0)
        assert scale.max() == pytest.approx(1.0, abs=0.01)


def test_semantic_target_nearer_is_brighter():
    depth = np.zeros((4, 4), np.float32)
    depth[1, 1], depth[2, 2] = 1.0, 2.0
    sem = semantic_target("car", depth)
    assert sem[1, 1].sum() > sem[2, 2].sum() > 0 and sem[0, 0].sum() == 0


def test_visible_fraction_of_truncated_view(renderer):
    renderer.set_model(box_scene(), "car", "grey")
    assert renderer.render(view(), [LIGHT]).visible_fraction == 1.0
    cut = renderer.render(view(distance=1.6, focal=(0.0, 0.0, 0.35)), [LIGHT])
    assert 0.2 < cut.visible_fraction < 0.95


def test_rendering_is_deterministic(renderer):
    renderer.set_model(box_scene(), "car", "part_colors")
    light = sample_light(LightParams(), np.random.default_rng(3))
    a = renderer.render(view(), [light])
    b = renderer.render(view(), [light])
    assert (a.rgb == b.rgb).all() and (a.depth == b.depth).all()


def test_mask_bbox_empty():
    assert mask_bbox(np.zeros((5, 5), np.uint8)) == (0, 0, 0, 0)


COPLANAR = """
import numpy as np, trimesh
from PIL import Image
from core.geometry import View
from core.rendering import LightSample, Renderer

def quad(color):
    q = trimesh.Trimesh([[-0.3, 0, -0.3], [0.3, 0, -0.3], [0.3, 0, 0.3], [-0.3, 0, 0.3]],
                        [[0, 1, 2], [0, 2, 3]], process=False)
    tex = Image.fromarray(np.full((4, 4, 3), color, np.uint8))
    q.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]],
        material=trimesh.visual.material.PBRMaterial(baseColorTexture=tex))
    return q

scene = trimesh.Scene()
junk = [object() for _ in range(np.random.randint(1, 500))]  # vary memory addresses
scene.add_geometry(quad((0, 0, 255)), geom_name="b_blue")
scene.add_geometry(quad((255, 0, 0)), geom_name="a_red")
with Renderer(32, 35.0) as r:
    r.set_model(scene, "tvmonitor", "textured")
    rgb = r.render(View(0.0, 0.0, 0.0, 1.2, (0.0, 0.0, 0.0), False, 0.0),
                   [LightSample(1.0, 0.0, 0.0, (1.0, 1.0, 1.0), 0.0, 45.0)]).rgb
print(rgb[16, 16].tolist())
"""


def test_coplanar_parts_draw_in_part_name_order():
    """Separate pyrender meshes at the same pose are drawn in hash order, which varies
    between processes; the parts must be drawn in a fixed order instead (first wins)."""
    import json
    import subprocess
    import sys

    seen = {subprocess.run([sys.executable, "-c", COPLANAR], capture_output=True, text=True, check=True)
            .stdout.strip().splitlines()[-1] for _ in range(4)}
    assert len(seen) == 1
    r, g, b = json.loads(seen.pop())
    assert r > 200 and b < 50  # "a_red" comes first by name
