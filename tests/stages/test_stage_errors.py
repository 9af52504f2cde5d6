"""Bad input fails with a clear error naming the file and the problem, and nothing already
written is lost: bad params (CLI exit 2), missing/bad backgrounds, a missing catalog, and
an interrupted render that resumes with only the missing shard.

The stages run for real (pyrender, real GLBs) in this process with ``render.workers: 1``;
no renderer is kept alive here while a stage runs (one OpenGL renderer per process).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from core.params import parse_params
from stages import catalog, composite, render
from stages._cli import stage_main
from tests.conftest import ROOT, small_params_raw


def tiny_raw(tmp: Path, *, categories=("car", "chair"), models=2, heldout=1) -> dict:
    """The small profile shrunk further: 1 training model per class, 2 views at 32 px,
    one worker (in-process rendering); every path under ``tmp``."""
    raw = small_params_raw(tmp)
    raw["catalog"]["procedural"].update(categories=list(categories), models_per_category=models,
                                        heldout_per_category=heldout)
    raw["render"].update(workers=1, views_per_model=2, image_size=32)
    raw["composite"].update(workers=1, image_size=32)
    raw["composite"]["backgrounds"].update(size=64)
    return raw


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """catalog + render of the tiny config, shared by the composite tests (which only read
    them); returns the raw params dict."""
    tmp = tmp_path_factory.mktemp("rendered")
    raw = tiny_raw(tmp)
    params = parse_params(raw, "tiny")
    catalog.run(params)
    manifest = render.run(params)
    assert len(manifest) == 4
    return raw


def _composite_raw(rendered: dict, tmp: Path, bg_dir: Path) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(rendered))  # deep copy
    raw["paths"]["composites"] = str(tmp / "composites")
    raw["paths"]["adaptation_pairs"] = str(tmp / "adaptation_pairs")
    raw["paths"]["staging"] = str(tmp / "staging")
    raw["paths"]["metrics"] = str(tmp / "metrics")
    raw["composite"]["backgrounds"].update(skimage=False, procedural=0, dir=str(bg_dir), dir_required=True)
    return raw


def _previous_outputs(raw: dict) -> dict[Path, bytes]:
    """Stand-ins for the outputs of an earlier successful run."""
    files = {}
    for key in ("composites", "adaptation_pairs"):
        path = Path(raw["paths"][key]) / "shards" / "old" / "0000-c0_image.png"
        path.parent.mkdir(parents=True)
        path.write_bytes(f"previous {key}".encode())
        (Path(raw["paths"][key]) / "manifest.parquet").write_bytes(b"previous manifest")
        files[path] = path.read_bytes()
    return files


def _assert_untouched(raw: dict, files: dict[Path, bytes]) -> None:
    for path, content in files.items():
        assert path.read_bytes() == content
        root = path.parents[2]
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
            "manifest.parquet", "shards", "shards/old", "shards/old/0000-c0_image.png",
        ]
        assert (root / "manifest.parquet").read_bytes() == b"previous manifest"
        # no temporaries left next to the output
        assert not [p for p in root.parent.iterdir() if p.name.startswith(f".{root.name}.")]
    assert not (Path(raw["paths"]["metrics"]) / "composite.json").exists()


# --------------------------------------------------------------------------- bad params (CLI)
def test_cli_unknown_key_exits_2_naming_the_dotted_key(tmp_path: Path):
    raw = small_params_raw(tmp_path)
    raw["render"]["views_per_modle"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "stages.render", "--params", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "render.views_per_modle" in proc.stderr
    assert str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(raw["paths"]["renders"]).exists()


# --------------------------------------------------------------------------- backgrounds
def test_composite_empty_background_folder(rendered: dict, tmp_path: Path, caplog):
    empty = tmp_path / "my photos"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    raw = _composite_raw(rendered, tmp_path, empty)
    before = _previous_outputs(raw)
    with pytest.raises(ValueError, match="no background images") as err:
        composite.run(parse_params(raw, "test"))
    assert str(empty) in str(err.value)
    _assert_untouched(raw, before)

    # the same through the CLI entry point: exit 2, the message logged
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        stage_main("composite", composite.run, ["--params", str(params_file)])
    assert exit_info.value.code == 2
    assert "no background images" in caplog.text and str(empty) in caplog.text
    _assert_untouched(raw, before)


def test_composite_corrupt_background_names_the_file(rendered: dict, tmp_path: Path):
    folder = tmp_path / "bgs"
    folder.mkdir()
    good = (np.random.default_rng(0).integers(0, 256, (48, 48, 3))).astype(np.uint8)
    assert cv2.imwrite(str(folder / "a_good.jpg"), good)
    corrupt = folder / "b_corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)  # JPEG magic, then garbage
    raw = _composite_raw(rendered, tmp_path, folder)
    before = _previous_outputs(raw)
    with pytest.raises(ValueError) as err:
        composite.run(parse_params(raw, "test"))
    assert str(corrupt) in str(err.value)
    assert "not a readable image" in str(err.value)
    _assert_untouched(raw, before)


def test_composite_missing_background_folder(rendered: dict, tmp_path: Path):
    missing = tmp_path / "nowhere"
    raw = _composite_raw(rendered, tmp_path, missing)
    before = _previous_outputs(raw)
    with pytest.raises(FileNotFoundError, match="background folder not found") as err:
        composite.run(parse_params(raw, "test"))
    assert str(missing) in str(err.value)
    _assert_untouched(raw, before)


# --------------------------------------------------------------------------- missing catalog
def test_render_without_catalog_names_the_manifest(tmp_path: Path):
    params = parse_params(tiny_raw(tmp_path), "test")
    manifest = Path(params.paths.catalog) / "manifest.parquet"
    with pytest.raises((FileNotFoundError, ValueError)) as err:
        render.run(params)
    assert str(manifest) in str(err.value)
    assert not Path(params.paths.renders).exists()


# --------------------------------------------------------------------------- resume
def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_interrupted_render_resumes_with_only_the_missing_shard(tmp_path: Path):
    raw = tiny_raw(tmp_path, categories=("bottle", "car", "chair"))
    params = parse_params(raw, "test")
    cat = catalog.run(params)
    train = sorted(cat.loc[cat["split"] == "train", "model_id"])
    assert train == ["proc-bottle-000", "proc-car-000", "proc-chair-000"]  # render order
    cat_dir = Path(params.paths.catalog)
    glb = cat_dir / "meshes" / "proc-chair-000.glb"
    good_bytes = glb.read_bytes()
    glb.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())

    with pytest.raises(ValueError) as err:
        render.run(params)
    assert str(glb.resolve()) in str(err.value) or str(glb) in str(err.value)
    assert "GLB" in str(err.value)
    out = Path(params.paths.renders)
    assert not out.exists()  # nothing published
    [staging] = [p for p in Path(params.paths.staging).iterdir()]
    assert staging.name.startswith("render-")
    assert sorted(p.name for p in staging.iterdir()) == ["proc-bottle-000", "proc-car-000"]
    finished = {}
    for key in ("proc-bottle-000", "proc-car-000"):
        assert (staging / key / "samples.parquet").is_file()
        assert len(pd.read_parquet(staging / key / "samples.parquet")) == 2
        finished[key] = _stat(staging / key / "0000_rgb.png")

    glb.write_bytes(good_bytes)
    manifest = render.run(params)

    assert len(manifest) == 3 * 2
    assert sorted(manifest["model_id"].unique()) == train
    on_disk = pd.read_parquet(out / "manifest.parquet")
    assert len(on_disk) == 6 and sorted(on_disk["sample_id"]) == sorted(manifest["sample_id"])
    for layer in ("rgb", "mask", "depth", "semantic"):
        assert all((out / rel).is_file() for rel in on_disk[layer])
    # the finished shards were moved, not rendered again: same inode and mtime
    for key, stat in finished.items():
        assert _stat(out / "shards" / key / "0000_rgb.png") == stat, key
    redone = _stat(out / "shards" / "proc-chair-000" / "0000_rgb.png")
    assert redone[1] >= max(s[1] for s in finished.values())
    assert not staging.exists()
    assert not any(Path(params.paths.staging).iterdir())


def test_missing_viewpoint_prior_is_skipped_unless_required(tmp_path: Path, caplog):
    raw = small_params_raw(tmp_path)
    raw["render"]["viewpoint_prior"].update(kind="pascal3d", path=str(tmp_path / "absent.csv"))
    with caplog.at_level(logging.WARNING):
        assert render.load_prior(parse_params(raw).render) is None
    assert f"skipped: viewpoint prior not found at {tmp_path / 'absent.csv'}" in caplog.text
    raw["render"]["viewpoint_prior"]["required"] = True
    with pytest.raises(FileNotFoundError, match="absent.csv: viewpoint annotations not found"):
        render.load_prior(parse_params(raw).render)
