"""Data contracts: one great-expectations suite per stage manifest (SPEC §5).

Every manifest (``<folder>/manifest.parquet``) is checked for nulls, unique ids, the
category set, value ranges, boxes inside the image, class balance, file existence and
image statistics. Checks that great-expectations has no expectation for are computed in
pandas as a derived boolean column and validated with ``expect_column_values_to_be_in_set
([True])``, so every verdict comes out of one GX validation result.

Image statistics run on a seeded sample of ``image_sample`` rows, validated as a second,
small batch (``batch: "image_sample"`` in the report) so its counts read "k of n sampled
images", never diluted by the unsampled rows.

great-expectations is imported lazily (about 3 s), so importing this module is cheap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from core.io import MANIFEST, read_image, read_manifest

MIN_PIXEL_STD = 2.0  # a photo whose pixel values vary less than this is treated as constant
POSE = ("azimuth", "elevation", "theta", "distance")
BBOX = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "width", "height")
PROXY_REAL_DOMAIN = "proxy-real (synthetic)"

# column -> (min, max, strict_min, strict_max); None = unbounded. Angles in degrees,
# distance in bounding-box diagonals.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "azimuth": (0.0, 360.0, False, True),
    "elevation": (-90.0, 90.0, False, False),
    "theta": (-180.0, 180.0, False, False),
    "distance": (0.0, None, True, False),
    "visible_fraction": (0.0, 1.0, True, False),
    "n_faces": (1, None, False, False),
}


@dataclass(frozen=True)
class ManifestSpec:
    """The columns of one stage manifest that its suite checks.

    ``files`` are paths relative to the manifest's folder; of those, ``photos`` must not be
    constant (pixel std > ``MIN_PIXEL_STD``), ``masks`` must have a non-zero pixel and
    ``rasters`` must merely be readable images.
    """

    ids: tuple[str, ...]  # unique and non-null; the first is the row's id in messages
    required: tuple[str, ...]  # non-null (foreign ids, category, pose)
    files: tuple[str, ...] = ()
    photos: tuple[str, ...] = ()
    masks: tuple[str, ...] = ()
    rasters: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()  # keys of RANGES
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # column -> allowed values
    bbox: bool = False
    category: bool = True
    balance: bool = True  # class balance within contracts.class_balance (not for real eval sets)


_SHAPE = ("visible_fraction",)
SPECS: dict[str, ManifestSpec] = {
    "catalog": ManifestSpec(
        ids=("model_id",), required=("category", "split"), files=("path",),
        ranges=("n_faces",), values=(("split", ("heldout", "train")),)),
    "renders": ManifestSpec(
        ids=("sample_id",), required=("model_id", "category", *POSE),
        files=("rgb", "mask", "depth", "semantic"), photos=("rgb",), masks=("mask",),
        rasters=("depth", "semantic"), ranges=(*POSE, *_SHAPE), bbox=True),
    "composites": ManifestSpec(
        ids=("composite_id",), required=("sample_id", "model_id", "category", *POSE),
        files=("image", "mask", "semantic"), photos=("image",), masks=("mask",),
        rasters=("semantic",), ranges=(*POSE, *_SHAPE), bbox=True),
    "adaptation_pairs": ManifestSpec(
        ids=("pair_id",), required=("composite_id", "sample_id", "model_id", "category", *POSE),
        files=("image", "render"), photos=("image", "render"), ranges=(*POSE, *_SHAPE)),
    "proxy_real": ManifestSpec(
        ids=("image_id",), required=("model_id", "category", *POSE), files=("image",),
        photos=("image",), ranges=(*POSE, *_SHAPE), values=(("domain", (PROXY_REAL_DOMAIN,)),),
        bbox=True),
    # A real evaluation set in the common record (core/evalsets.py), one row per object;
    # real datasets are imbalanced by nature, and angles are null where not annotated.
    "evalset": ManifestSpec(
        ids=("object_id",), required=("image", "category"), files=("image",), photos=("image",),
        ranges=("azimuth", "elevation", "theta"), bbox=True, balance=False),
}


@dataclass(frozen=True)
class ContractResult:
    """The verdict of one suite on one manifest.

    ``failures`` holds one human line per failed expectation ("renders: azimuth: 3 of 120
    values outside [0, 360) (e.g. 400.0)"); ``report`` is JSON-serialisable: per
    expectation its type, column, kwargs, success, counts and a few unexpected values.
    """

    suite: str
    manifest: str
    success: bool
    rows: int
    failures: tuple[str, ...]
    report: dict


class ContractError(RuntimeError):
    """A suite failed; ``results`` carries every suite's verdict (failed ones included)."""

    def __init__(self, results: Sequence[ContractResult]) -> None:
        self.results = tuple(results)
        lines = [line for r in self.results for line in r.failures]
        super().__init__("data contract failed:\n  " + "\n  ".join(lines))


def require_success(results: Sequence[ContractResult]) -> None:
    """Raise ``ContractError`` (carrying ``results``) when any suite failed."""
    if not all(r.success for r in results):
        raise ContractError(results)


def _spec(name: str) -> ManifestSpec:
    if name not in SPECS:
        raise ValueError(f"Unknown contract suite {name!r}: one of {', '.join(SPECS)} expected")
    return SPECS[name]


def _gx():
    """great_expectations and its expectations module, imported on first use."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no analytics network calls
    try:
        import great_expectations as gx
        import great_expectations.expectations as gxe
    except ImportError as e:  # pragma: no cover - the dependency is pinned
        raise ImportError("core.contracts needs great-expectations 1.x: "
                          "pip install 'great-expectations>=1,<2'") from e
    return gx, gxe


def _interval(lo: float | None, hi: float | None, strict_lo: bool, strict_hi: bool) -> str:
    left = "(" if strict_lo or lo is None else "["
    right = ")" if strict_hi or hi is None else "]"
    low = "-inf" if lo is None else f"{lo:g}"
    high = "inf" if hi is None else f"{hi:g}"
    return f"{left}{low}, {high}{right}"


def _short_set(values: Sequence[str], n: int = 6) -> str:
    shown = ", ".join(values[:n])
    return f"[{shown}{', ...' if len(values) > n else ''}] ({len(values)} values)"


def suite_for(name: str, categories: Sequence[str], *, class_balance: float = 3.0) -> list:
    """The expectations (great-expectations objects) of suite ``name``, in report order.

    Each carries ``meta``: ``column`` (the subject named in failure lines), ``what`` and
    ``problem`` (the failure wording), ``inputs`` (the manifest columns it reads),
    ``batch`` ("manifest" or "image_sample") and ``needs_files``. Derived boolean columns
    are named ``<subject>__<check>`` and computed by ``validate_manifest``.
    """
    spec = _spec(name)
    _, gxe = _gx()
    categories = sorted(set(categories))
    out: list = []

    def add(cls, *, subject: str, problem: str, what: str = "values", inputs: Sequence[str] = (),
            batch: str = "manifest", needs_files: bool = False, **kwargs: Any) -> None:
        meta = {"order": len(out), "column": subject, "what": what, "problem": problem,
                "inputs": list(inputs) or [subject], "batch": batch, "needs_files": needs_files}
        out.append(cls(**kwargs, meta=meta))

    def derived(check: str, *, subject: str, problem: str, what: str, inputs: Sequence[str],
                batch: str = "manifest", needs_files: bool = False) -> None:
        add(gxe.ExpectColumnValuesToBeInSet, subject=subject, problem=problem, what=what,
            inputs=inputs, batch=batch, needs_files=needs_files,
            column=f"{subject}__{check}", value_set=[True])

    columns = [*spec.ids, *spec.required, *spec.files, *spec.ranges, *(c for c, _ in spec.values)]
    if spec.category:
        columns.append("category")
    if spec.bbox:
        columns += BBOX
    add(gxe.ExpectTableRowCountToBeBetween, subject="manifest", problem="rows (at least 1 expected)",
        inputs=(), min_value=1)
    for col in dict.fromkeys(columns):
        add(gxe.ExpectColumnToExist, subject=col, problem="column missing", column=col)
    for col in dict.fromkeys((*spec.ids, *spec.required, *spec.files)):
        add(gxe.ExpectColumnValuesToNotBeNull, subject=col, problem="null", column=col)
    for col in spec.ids:
        add(gxe.ExpectColumnValuesToBeUnique, subject=col, problem="duplicated", column=col)
    if spec.category:
        add(gxe.ExpectColumnValuesToBeInSet, subject="category", column="category",
            problem=f"not in the category set {_short_set(categories)}", value_set=categories)
    for col, allowed in spec.values:
        add(gxe.ExpectColumnValuesToBeInSet, subject=col, column=col,
            problem=f"not in {_short_set(list(allowed))}", value_set=list(allowed))
    for col in spec.ranges:
        lo, hi, strict_lo, strict_hi = RANGES[col]
        add(gxe.ExpectColumnValuesToBeBetween, subject=col, column=col,
            problem=f"outside {_interval(lo, hi, strict_lo, strict_hi)}",
            min_value=lo, max_value=hi, strict_min=strict_lo, strict_max=strict_hi)
    if spec.bbox:
        derived("nonempty", subject="bbox", what="boxes", inputs=BBOX[:4],
                problem="empty (x0 < x1 and y0 < y1 expected)")
        derived("in_image", subject="bbox", what="boxes", inputs=BBOX,
                problem="not inside the image (0 <= x0, x1 <= width, 0 <= y0, y1 <= height)")
    if spec.category and spec.balance and len(categories) >= 2:
        derived("balanced", subject="category", what="rows", inputs=("category",),
                problem=f"in a class whose row count is outside [1/{class_balance:g}, "
                        f"{class_balance:g}] x the median class count")
    for col in spec.files:
        derived("exists", subject=col, what="files", inputs=(col,), needs_files=True,
                problem="missing under the manifest folder")
    for col in spec.photos:
        derived("not_constant", subject=col, what="sampled images", inputs=(col,),
                batch="image_sample", needs_files=True,
                problem=f"unreadable or constant (pixel std <= {MIN_PIXEL_STD:g})")
    for col in spec.masks:
        derived("nonempty", subject=col, what="sampled masks", inputs=(col,),
                batch="image_sample", needs_files=True, problem="unreadable or empty (no non-zero pixel)")
    for col in spec.rasters:
        derived("readable", subject=col, what="sampled images", inputs=(col,),
                batch="image_sample", needs_files=True, problem="unreadable")
    return out


def _row_ids(df: pd.DataFrame, spec: ManifestSpec) -> pd.Series:
    key = spec.ids[0]
    ids = df[key].astype(str) if key in df else pd.Series(df.index.astype(str), index=df.index)
    return f"{key}=" + ids


def _derive_manifest(df: pd.DataFrame, spec: ManifestSpec, folder: Path, *, check_files: bool,
                     class_balance: float) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Derived boolean columns on every row, and per derived column a description per row."""
    derived: dict[str, pd.Series] = {}
    details: dict[str, pd.Series] = {}
    ids = _row_ids(df, spec)
    if spec.bbox and all(c in df for c in BBOX):
        x0, y0, x1, y1, w, h = (pd.to_numeric(df[c], errors="coerce") for c in BBOX)
        box = (ids + " box (" + x0.astype(str) + ", " + y0.astype(str) + ", " + x1.astype(str)
               + ", " + y1.astype(str) + ") in " + w.astype(str) + "x" + h.astype(str))
        derived["bbox__nonempty"] = (x0 < x1) & (y0 < y1)
        derived["bbox__in_image"] = (x0 >= 0) & (y0 >= 0) & (x1 <= w) & (y1 <= h)
        details["bbox__nonempty"] = details["bbox__in_image"] = box
    if spec.category and spec.balance and "category" in df:
        counts = df["category"].value_counts()  # nulls are the not-null expectation's job
        if len(counts) >= 2:
            median = float(counts.median())
            lo, hi = median / class_balance, median * class_balance
            ok = {c: lo <= n <= hi for c, n in counts.items()}
            derived["category__balanced"] = df["category"].map(ok).fillna(True).astype(bool)
            details["category__balanced"] = df["category"].map(
                lambda c: f"{c!r}: {counts.get(c, 0)} rows vs median {median:g} "
                          f"(allowed [{lo:.4g}, {hi:.4g}])")
        else:
            derived["category__balanced"] = pd.Series(True, index=df.index)
    if check_files:
        for col in spec.files:
            if col in df:
                derived[f"{col}__exists"] = df[col].map(
                    lambda p: isinstance(p, str) and bool(p) and (folder / p).is_file()).astype(bool)
                details[f"{col}__exists"] = ids + " " + df[col].astype(str)
    return pd.concat([df, pd.DataFrame(derived, index=df.index)], axis=1), details


def _image_check(path: Path, kind: str) -> tuple[bool, str]:
    """(ok, detail) for one image: ``kind`` is "photo", "mask" or "raster"."""
    try:
        image = read_image(path, flags=cv2.IMREAD_UNCHANGED)
    except ValueError as e:
        return False, f"unreadable ({e})"
    if kind == "photo":
        std = float(np.std(image))
        return std > MIN_PIXEL_STD, f"{path.name}: pixel std {std:.2f}"
    if kind == "mask":
        nonzero = int(np.count_nonzero(image))
        return nonzero > 0, f"{path.name}: {nonzero} non-zero pixels"
    return True, f"{path.name}: readable"


def _derive_sample(df: pd.DataFrame, spec: ManifestSpec, folder: Path, *, image_sample: int,
                   seed: int) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """A seeded sample of ``image_sample`` rows with derived image-statistics columns."""
    n = min(image_sample, len(df))
    rows = np.sort(np.random.default_rng(seed).choice(len(df), size=n, replace=False))
    sample = df.iloc[rows].reset_index(drop=True)
    ids = _row_ids(sample, spec)
    derived: dict[str, pd.Series] = {}
    details: dict[str, pd.Series] = {}
    checks = ([(c, "photo", "not_constant") for c in spec.photos]
              + [(c, "mask", "nonempty") for c in spec.masks]
              + [(c, "raster", "readable") for c in spec.rasters])
    for col, kind, check in checks:
        if col not in sample:
            continue
        found = [_image_check(folder / str(p), kind) for p in sample[col]]
        derived[f"{col}__{check}"] = pd.Series([ok for ok, _ in found], dtype=bool)
        details[f"{col}__{check}"] = ids + " " + pd.Series([d for _, d in found], dtype=str)
    cols = [c for c in spec.ids if c in sample]
    return pd.concat([sample[cols], pd.DataFrame(derived, index=sample.index)], axis=1), details


def _exception_message(info: Mapping[str, Any]) -> str | None:
    """The first exception message in a GX ``exception_info`` (flat or keyed by metric)."""
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, Mapping) and (value.get("exception_message") or value.get("raised_exception")):
            return str(value.get("exception_message") or "exception")
    return None


def _example(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _failure_line(suite: str, entry: dict, details: Mapping[str, pd.Series]) -> str:
    meta = entry["meta"]
    head = f"{suite}: {meta['column']}:"
    if entry["exception"]:
        return f"{head} could not be evaluated ({entry['exception'].splitlines()[0]})"
    if entry["type"] == "expect_column_to_exist":
        return f"{head} column missing"
    if entry["type"] == "expect_table_row_count_to_be_between":
        return f"{head} {entry['observed_value']} {meta['problem']}"
    count = f"{entry['unexpected_count']} of {entry['element_count']} {meta['what']} {meta['problem']}"
    detail = details.get(entry["kwargs"].get("column", ""))
    if detail is not None:
        examples = [detail.get(i) for i in entry["unexpected_index_list"]]
    elif entry["type"] == "expect_column_values_to_not_be_null":
        examples = []
    else:
        examples = [_example(v) for v in entry["partial_unexpected_list"]]
    examples = list(dict.fromkeys(e for e in examples if isinstance(e, str)))[:3]
    return f"{head} {count}" + (f" (e.g. {'; '.join(examples)})" if examples else "")


def _entries(result: Any, batch: str) -> list[dict]:
    """Report entries (JSON-ready) from one GX suite validation result."""
    out = []
    for r in result.to_json_dict()["results"]:
        config, res = r["expectation_config"], r.get("result") or {}
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        out.append({
            "type": config["type"], "column": kwargs.get("column"), "kwargs": kwargs,
            "meta": config.get("meta") or {}, "batch": batch, "success": bool(r["success"]),
            "element_count": res.get("element_count"), "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"), "missing_count": res.get("missing_count"),
            "observed_value": res.get("observed_value"),
            "partial_unexpected_list": list(res.get("partial_unexpected_list") or [])[:5],
            "unexpected_index_list": list(res.get("partial_unexpected_index_list") or [])[:5],
            "exception": _exception_message(r.get("exception_info") or {}),
        })
    return out


def _run_suite(gx: Any, name: str, df: pd.DataFrame, expectations: list) -> Any:
    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (context.data_sources.add_pandas(f"{name}-source").add_dataframe_asset(name)
                 .add_batch_definition_whole_dataframe(name))
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    return batch_def.get_batch(batch_parameters={"dataframe": df}).validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})


def validate_manifest(name: str, folder: str | Path, *, categories: Sequence[str],
                      check_files: bool = True, image_sample: int = 16, seed: int = 0,
                      class_balance: float = 3.0) -> ContractResult:
    """Validate ``<folder>/manifest.parquet`` with suite ``name``; never raises on bad data.

    ``check_files=False`` skips file existence and image statistics (both need the files);
    ``image_sample`` rows drawn with ``numpy.random.default_rng(seed)`` get the image
    checks (0 skips them). Raises ``ValueError`` for an unknown suite name and
    ``FileNotFoundError`` naming the path for a missing manifest.
    """
    _spec(name)
    folder = Path(folder)
    manifest = folder / MANIFEST if folder.suffix != ".parquet" else folder
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found (run the stage that produces it)")
    return _validate_frame(name, read_manifest(manifest), manifest.parent, str(manifest), categories=categories,
                           check_files=check_files, image_sample=image_sample, seed=seed,
                           class_balance=class_balance)


def _validate_frame(name: str, df: pd.DataFrame, folder: Path, label: str, *, categories: Sequence[str],
                    check_files: bool, image_sample: int, seed: int, class_balance: float) -> ContractResult:
    """Suite ``name`` on the table ``df`` whose file columns are relative to ``folder``;
    ``label`` names the table in the report."""
    spec = _spec(name)
    gx, _ = _gx()
    expectations = [e for e in suite_for(name, categories, class_balance=class_balance)
                    if check_files or not e.meta["needs_files"]]
    on_manifest = [e for e in expectations if e.meta["batch"] == "manifest"]
    on_sample = [e for e in expectations if e.meta["batch"] == "image_sample"]

    data, details = _derive_manifest(df, spec, folder, check_files=check_files,
                                     class_balance=class_balance)
    entries = _entries(_run_suite(gx, name, data, on_manifest), "manifest")
    details_by_batch: dict[str, Mapping[str, pd.Series]] = {"manifest": details, "image_sample": {}}
    sample_rows = 0
    if on_sample and image_sample > 0 and len(df):
        sample, details_by_batch["image_sample"] = _derive_sample(
            df, spec, folder, image_sample=image_sample, seed=seed)
        sample_rows = len(sample)
        entries += _entries(_run_suite(gx, f"{name}-images", sample, on_sample), "image_sample")
    entries.sort(key=lambda e: e["meta"].get("order", 0))

    missing = {e["meta"]["column"] for e in entries
               if e["type"] == "expect_column_to_exist" and not e["success"]}
    failures = []
    for entry in entries:
        if entry["success"]:
            continue
        if entry["exception"] and missing & set(entry["meta"].get("inputs", [])):
            continue  # the "column missing" line already says why
        failures.append(_failure_line(name, entry, details_by_batch[entry["batch"]]))

    success = all(e["success"] for e in entries)
    report = {
        "suite": name, "manifest": label, "success": success, "rows": len(df),
        "failures": failures, "check_files": check_files, "class_balance": class_balance,
        "categories": sorted(set(categories)),
        "image_sample": {"rows": sample_rows, "seed": seed},
        "statistics": {"evaluated": len(entries), "successful": sum(e["success"] for e in entries)},
        "expectations": [{k: v for k, v in e.items() if k != "meta"}
                         | {"subject": e["meta"].get("column"), "on_failure": e["meta"].get("problem")}
                         for e in entries],
        "great_expectations": gx.__version__,
    }
    report = json.loads(json.dumps(report, default=str))  # JSON-safe (numpy scalars etc.)
    return ContractResult(suite=name, manifest=label, success=success, rows=len(df),
                          failures=tuple(failures), report=report)


def evalset_frame(evalset: Any) -> pd.DataFrame:
    """One row per object of a :class:`core.evalsets.EvalSet`: image (absolute path),
    category, box (the whole image when the dataset has none; the size read from the
    file header when the annotation lacks it), angles (null where not annotated)."""
    from PIL import Image

    rows = []
    for image in evalset.images:
        w, h = image.width, image.height
        if (w is None or h is None) and image.image.is_file():
            try:
                with Image.open(image.image) as im:
                    w, h = im.size
            except OSError:
                w = h = None  # unreadable: the image check says so
        for k, obj in enumerate(image.objects):
            box = obj.bbox if obj.bbox is not None else (0.0, 0.0, w, h)
            rows.append({"object_id": f"{image.image_id}#{k}", "image": str(image.image.resolve()),
                         "category": obj.category, "bbox_x0": box[0], "bbox_y0": box[1], "bbox_x1": box[2],
                         "bbox_y1": box[3], "width": w, "height": h, "azimuth": obj.azimuth,
                         "elevation": obj.elevation, "theta": obj.theta})
    columns = ["object_id", "image", "category", *BBOX, "azimuth", "elevation", "theta"]
    return pd.DataFrame(rows, columns=columns).astype({c: float for c in (*BBOX, "azimuth", "elevation", "theta")})


def validate_evalset(evalset: Any, *, image_sample: int = 16, seed: int = 0, name: str | None = None) -> ContractResult:
    """The ``evalset`` suite on a loaded evaluation dataset (``name``: how the report calls
    it, e.g. ``ikea_test``): ids, category set, boxes inside the image, angle ranges,
    image files exist and are not constant."""
    return _validate_frame("evalset", evalset_frame(evalset), Path("/"), f"{name or evalset.name} ({evalset.root})",
                           categories=evalset.categories, check_files=True, image_sample=image_sample, seed=seed,
                           class_balance=3.0)


def validate_all(folders: Mapping[str, str | Path], *, categories: Sequence[str],
                 **kw: Any) -> list[ContractResult]:
    """``validate_manifest`` for each ``suite name -> folder``; ``kw`` is passed through."""
    return [validate_manifest(name, folder, categories=categories, **kw)
            for name, folder in folders.items()]


def write_report(results: Sequence[ContractResult], path: str | Path) -> Path:
    """Write every suite's report to one JSON file (sorted keys), e.g. for MLflow.

    Layout: ``{"success": bool, "failures": [...], "suites": {name: report}}``.
    """
    suites: dict[str, dict] = {}
    for r in results:
        if r.suite in suites:
            raise ValueError(f"suite {r.suite!r} appears twice in the results; one each expected")
        suites[r.suite] = r.report
    payload = {"success": all(r.success for r in results),
               "failures": [line for r in results for line in r.failures], "suites": suites}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path
