"""Data contracts (SPEC §5): real great-expectations suites on tiny manifests and real data."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from core import contracts

from core.contracts import (
    SPECS,
    ContractError,
    require_success,
    suite_for,
    validate_all,
    validate_manifest,
    write_report,
)
from core.io import read_manifest, write_manifest, write_png

ROOT = Path(__file__).resolve().parents[2]
S = 32  # image side, pixels
CATEGORIES = ("aeroplane", "bus", "chair")


def make_renders(folder: Path, counts: dict[str, int] | None = None,
                 mutate: Callable[[pd.DataFrame, Path], None] | None = None) -> Path:
    """A renders manifest with real PNGs: ``counts`` rows per category (default 4 each)."""
    counts = counts or {c: 4 for c in CATEGORIES}
    rng = np.random.default_rng(0)
    (folder / "shards").mkdir(parents=True)
    rows = []
    for category, n in counts.items():
        for v in range(n):
            sid = f"{category}-v{v:04d}"
            rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
            mask = np.zeros((S, S), np.uint8)
            mask[8:24, 6:26] = 255
            depth = np.where(mask > 0, 20000 + rng.integers(0, 500, (S, S)), 0).astype(np.uint16)
            semantic = np.zeros((S, S, 3), np.uint8)
            semantic[mask > 0] = (200, 40, 40)
            files = {}
            for kind, image in (("rgb", rgb), ("mask", mask), ("depth", depth), ("semantic", semantic)):
                files[kind] = f"shards/{sid}_{kind}.png"
                write_png(folder / files[kind], image)
            rows.append({
                "sample_id": sid, "model_id": f"{category}-00", "category": category,
                "view_index": v, "azimuth": float(rng.uniform(0, 360)),
                "elevation": float(rng.uniform(-10, 60)), "theta": float(rng.uniform(-20, 20)),
                "distance": float(rng.uniform(1, 3)), "bbox_x0": 6, "bbox_y0": 8, "bbox_x1": 26,
                "bbox_y1": 24, "visible_fraction": 1.0, "width": S, "height": S, **files,
            })
    df = pd.DataFrame(rows)
    if mutate is not None:
        mutate(df, folder)
    write_manifest(df, folder / "manifest.parquet")
    return folder


def _set(column: str, value, row: int = 2):
    def mutate(df: pd.DataFrame, folder: Path) -> None:
        df[column] = df[column].astype(object)
        df.loc[row, column] = value
    return mutate


def _missing_file(df: pd.DataFrame, folder: Path) -> None:
    (folder / df.loc[3, "rgb"]).unlink()


def _constant_image(df: pd.DataFrame, folder: Path) -> None:
    write_png(folder / df.loc[4, "rgb"], np.full((S, S, 3), 128, np.uint8))


def _empty_mask(df: pd.DataFrame, folder: Path) -> None:
    write_png(folder / df.loc[5, "mask"], np.zeros((S, S), np.uint8))


def _duplicate_id(df: pd.DataFrame, folder: Path) -> None:
    df.loc[1, "sample_id"] = df.loc[0, "sample_id"]


def _bbox_outside(df: pd.DataFrame, folder: Path) -> None:
    df.loc[6, "bbox_x1"] = S + 9


def _bbox_empty(df: pd.DataFrame, folder: Path) -> None:
    df.loc[7, "bbox_y1"] = df.loc[7, "bbox_y0"]


def test_valid_renders_pass(tmp_path):
    folder = make_renders(tmp_path / "renders")
    result = validate_manifest("renders", folder, categories=CATEGORIES)
    assert result.success, result.failures
    assert result.failures == () and result.rows == 12 and result.suite == "renders"
    assert result.manifest == str(folder / "manifest.parquet")
    report = result.report
    assert report["success"] and report["image_sample"] == {"rows": 12, "seed": 0}
    checked = {(e["subject"], e["type"]) for e in report["expectations"]}
    for subject in ("azimuth", "elevation", "theta", "distance", "visible_fraction"):
        assert (subject, "expect_column_values_to_be_between") in checked
    for subject in ("bbox", "rgb", "mask", "depth", "semantic", "category"):
        assert (subject, "expect_column_values_to_be_in_set") in checked
    assert ("sample_id", "expect_column_values_to_be_unique") in checked
    json.dumps(report)  # JSON-serialisable as it stands


@pytest.mark.parametrize(("mutate", "counts", "column", "fragments"), [
    (_set("azimuth", 400.0), None, "azimuth", ["1 of 12 values outside [0, 360)", "400.0"]),
    (_set("category", None, row=0), None, "category", ["1 of 12 values null"]),
    (_set("category", "zebra"), None, "category", ["1 of 12 values not in the category set", "'zebra'"]),
    (_bbox_outside, None, "bbox", ["1 of 12 boxes not inside the image", "box (6, 8, 41, 24) in 32x32"]),
    (_bbox_empty, None, "bbox", ["1 of 12 boxes empty"]),
    (_missing_file, None, "rgb", ["1 of 12 files missing under the manifest folder", "aeroplane-v0003_rgb.png"]),
    (_constant_image, None, "rgb", ["1 of 12 sampled images unreadable or constant", "pixel std 0.00"]),
    (_empty_mask, None, "mask", ["1 of 12 sampled masks unreadable or empty", "0 non-zero pixels"]),
    (None, {"aeroplane": 4, "bus": 4, "chair": 40}, "category",
     ["40 of 48 rows in a class whose row count is outside [1/3, 3]", "'chair': 40 rows vs median 4"]),
    (_duplicate_id, None, "sample_id", ["2 of 12 values duplicated", "'aeroplane-v0000'"]),
], ids=["azimuth-400", "null-category", "unknown-category", "bbox-outside", "bbox-empty",
        "missing-file", "constant-image", "empty-mask", "class-imbalance", "duplicate-id"])
def test_broken_renders_fail_naming_the_column(tmp_path, mutate, counts, column, fragments):
    folder = make_renders(tmp_path / "renders", counts=counts, mutate=mutate)
    result = validate_manifest("renders", folder, categories=CATEGORIES)
    assert not result.success and not result.report["success"]
    assert result.failures, "a failed suite must say why"
    for line in result.failures:  # every failure names the broken column, nothing else fails
        assert line.startswith(f"renders: {column}: "), result.failures
    text = "\n".join(result.failures)
    for fragment in fragments:
        assert fragment in text, result.failures
    with pytest.raises(ContractError, match=f"renders: {column}: ") as err:
        require_success([result])
    assert err.value.results == (result,)


def test_check_files_false_skips_files_and_images(tmp_path):
    folder = make_renders(tmp_path / "renders", mutate=_missing_file)
    result = validate_manifest("renders", folder, categories=CATEGORIES, check_files=False)
    assert result.success, result.failures
    assert not any(e["column"].endswith(("__exists", "__not_constant")) for e in result.report["expectations"]
                   if e["column"])


def test_image_sample_is_seeded_and_counts_sampled_rows(tmp_path):
    folder = make_renders(tmp_path / "renders", counts={c: 10 for c in CATEGORIES})
    a = validate_manifest("renders", folder, categories=CATEGORIES, image_sample=5, seed=3)
    b = validate_manifest("renders", folder, categories=CATEGORIES, image_sample=5, seed=3)
    assert a.report["image_sample"] == {"rows": 5, "seed": 3}
    sampled = [e for e in a.report["expectations"] if e["batch"] == "image_sample"]
    assert {e["subject"] for e in sampled} == {"rgb", "mask", "depth", "semantic"}
    assert all(e["element_count"] == 5 for e in sampled)
    assert a.report == b.report


def test_missing_column_is_one_clear_line(tmp_path):
    folder = make_renders(tmp_path / "renders", mutate=lambda df, _: df.pop("theta"))
    result = validate_manifest("renders", folder, categories=CATEGORIES)
    assert not result.success
    assert result.failures == ("renders: theta: column missing",)


def test_empty_manifest_fails(tmp_path):
    folder = make_renders(tmp_path / "renders")
    write_manifest(read_manifest(folder).iloc[:0], folder / "manifest.parquet")
    result = validate_manifest("renders", folder, categories=CATEGORIES)
    assert not result.success and result.rows == 0
    assert result.failures == ("renders: manifest: 0 rows (at least 1 expected)",)


def test_unknown_suite_and_missing_manifest(tmp_path):
    with pytest.raises(ValueError, match="'render'.*catalog, renders, composites, adaptation_pairs, proxy_real"):
        validate_manifest("render", tmp_path, categories=CATEGORIES)
    with pytest.raises(ValueError, match="Unknown contract suite"):
        suite_for("nope", CATEGORIES)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent" / "manifest.parquet")):
        validate_manifest("renders", tmp_path / "absent", categories=CATEGORIES)


def test_suite_for_is_gx_expectations():
    import great_expectations.expectations as gxe

    suite = suite_for("renders", CATEGORIES)
    assert suite and all(isinstance(e, gxe.Expectation) for e in suite)
    assert any(e.meta["column"] == "category" and e.column == "category__balanced" for e in suite)
    single = suite_for("renders", ["chair"])  # class balance needs two classes
    assert not any(getattr(e, "column", None) == "category__balanced" for e in single)
    assert set(SPECS) == {"catalog", "renders", "composites", "adaptation_pairs", "proxy_real", "evalset"}
    assert not any(getattr(e, "column", None) == "category__balanced" for e in suite_for("evalset", CATEGORIES))


def make_proxy_real(folder: Path, domain: str = "proxy-real (synthetic)") -> Path:
    (folder / "shards").mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for i, category in enumerate(CATEGORIES * 2):
        image = f"shards/{i:04d}.jpg"
        write_png(folder / image.replace(".jpg", ".png"), rng.integers(0, 256, (S, S, 3), dtype=np.uint8))
        (folder / image.replace(".jpg", ".png")).rename(folder / image)  # decodable by content
        rows.append({"image_id": f"p{i:04d}", "image": image, "width": S, "height": S, "split": "test",
                     "domain": domain, "synthetic": True, "category": category, "model_id": f"{category}-00",
                     "bbox_x0": 1, "bbox_y0": 2, "bbox_x1": 30, "bbox_y1": 31, "azimuth": 10.0 * i,
                     "elevation": 5.0, "theta": 0.0, "distance": 2.0, "visible_fraction": 0.9})
    write_manifest(pd.DataFrame(rows), folder / "manifest.parquet")
    return folder


def test_proxy_real_domain(tmp_path):
    assert validate_manifest("proxy_real", make_proxy_real(tmp_path / "ok"), categories=CATEGORIES).success
    bad = validate_manifest("proxy_real", make_proxy_real(tmp_path / "bad", domain="real"), categories=CATEGORIES)
    assert not bad.success
    assert len(bad.failures) == 1 and bad.failures[0].startswith("proxy_real: domain: 6 of 6 values not in")


def test_catalog_ranges_and_split(tmp_path):
    folder = tmp_path / "catalog"
    (folder / "meshes").mkdir(parents=True)
    rows = []
    for i, category in enumerate(CATEGORIES * 2):
        (folder / "meshes" / f"m{i}.glb").write_bytes(b"glTF")
        rows.append({"model_id": f"m{i}", "category": category, "path": f"meshes/m{i}.glb",
                     "n_faces": 0 if i == 0 else 12, "split": "val" if i == 1 else "train"})
    write_manifest(pd.DataFrame(rows), folder / "manifest.parquet")
    result = validate_manifest("catalog", folder, categories=CATEGORIES)
    assert not result.success
    assert [line.split(":")[1].strip() for line in result.failures] == ["split", "n_faces"], result.failures


def test_write_report_has_every_suite(tmp_path):
    results = validate_all({"renders": make_renders(tmp_path / "renders", mutate=_set("azimuth", 400.0)),
                            "proxy_real": make_proxy_real(tmp_path / "proxy_real")}, categories=CATEGORIES)
    path = write_report(results, tmp_path / "reports" / "contracts.json")
    text = path.read_text()
    payload = json.loads(text)
    assert text == json.dumps(payload, indent=2, sort_keys=True) + "\n"  # sorted keys
    assert set(payload["suites"]) == {"renders", "proxy_real"}
    assert payload["success"] is False and payload["suites"]["proxy_real"]["success"] is True
    assert payload["failures"] == list(results[0].failures)
    assert payload["suites"]["renders"]["expectations"]
    with pytest.raises(ValueError, match="twice"):
        write_report([results[0], results[0]], tmp_path / "dup.json")


def test_import_is_cheap():
    code = "import sys, core.contracts; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


REAL = ("catalog", "renders", "composites", "adaptation_pairs", "proxy_real")


def test_real_manifests_pass():
    missing = [n for n in REAL if not (ROOT / "data" / n / "manifest.parquet").is_file()]
    if missing:
        pytest.skip(f"data/ not built here ({', '.join(missing)} missing): it is a DVC output, "
                    "absent on a fresh clone; run `dvc repro` to build it")
    categories = sorted(read_manifest(ROOT / "data" / "catalog")["category"].unique())
    results = validate_all({n: ROOT / "data" / n for n in REAL}, categories=categories)
    assert [r.suite for r in results] == list(REAL)
    assert all(r.success for r in results), [line for r in results for line in r.failures]
    assert all(r.rows > 0 for r in results)


def test_real_ikea_photos_pass_the_evalset_suite():
    from core.evalsets import load_evalset
    from tests.conftest import shared_data

    ikea = shared_data("ikea", "IKEA")
    result = contracts.validate_evalset(load_evalset("ikea", ikea, splits_csv=ikea.parent / "splits.csv"))
    assert result.success, result.failures
    assert result.rows == 631 and result.report["image_sample"]["rows"] == 16


def test_a_bad_evalset_fails_naming_the_problem(tmp_path):
    """VOC fixture: one box leaves its image, one photo is constant grey."""
    from core.evalsets import load_evalset
    from tests.core.evalset_fixtures import write_voc

    root = write_voc(tmp_path / "VOCdevkit")
    evalset = load_evalset("voc", root, split="val")
    rng = np.random.default_rng(0)
    for image in evalset.images:  # the fixture's JPEGs are flat grey: give them content
        cv2.imwrite(str(image.image), rng.integers(0, 255, (8, 12, 3), dtype=np.uint8))
    frame = contracts.evalset_frame(evalset)
    assert {"object_id", "image", "category", "bbox_x1", "width", "azimuth"} <= set(frame.columns)
    first = evalset.images[0]
    obj = first.objects[0]
    broken = dataclasses.replace(first, objects=(dataclasses.replace(obj, bbox=(0.0, 0.0, 50.0, 4.0)),
                                                 *first.objects[1:]))
    cv2.imwrite(str(evalset.images[-1].image), np.full((8, 12, 3), 127, np.uint8))
    bad = dataclasses.replace(evalset, images=(broken, *evalset.images[1:]))
    result = contracts.validate_evalset(bad, image_sample=len(bad.images))
    assert not result.success
    text = "\n".join(result.failures)
    assert "bbox: 1 of" in text and "not inside the image" in text
    assert "image: 1 of" in text and "constant" in text
