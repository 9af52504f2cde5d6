"""exemplar stage: 2D-3D exemplar detection (seed 004 §4.3) and its evaluation (§4.4).

Every image of ``exemplar.datasets`` (default: the SYNTHETIC proxy-real detection set of
the proxy_detection stage; a Pascal VOC or full-image IKEA set when the user has one) is
covered by sliding-window proposals whose features are pooled from maps computed once per
pyramid scale (core/features.py). Each proposal is scored against every compatible
rendered view as one matrix product Y·φ(x)+d (core/detector.py), reduced to the best view
per category, and per-category NMS gives the detections: box, category, score, model and
view with its pose.

Measured, per dataset (VOC AP per category, IoU >= ``iou_threshold``; mAP over the
categories with objects):
- Table 4.2's shape: exemplars {adapted (φ = ``adaptation.default``), composites without
  adaptation, clean renders on white without adaptation} x {no calibration, calibration};
- Fig. 4.8's shape: every φ variant, and AP against the aspect-ratio threshold τ;
- Table 4.3's shape: AP with random subsets of the views and of the models;
- Fig. 4.9: azimuth errors of the correct detections at 25% recall.

Outputs: ``paths.exemplar``/calibration.npz (c, d per view for the default φ: what
``c2r predict --exemplar`` uses), ``paths.exemplar``/<dataset>_detections.parquet (the
main configuration's detections), ``paths.metrics``/exemplar.json,
``paths.reports``/exemplar.md, ``paths.plots``/exemplar/ (AP vs τ, azimuth errors, examples).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from core import exemplar as ex
from core import metrics, plots
from core.backgrounds import load_backgrounds
from core.detector import (CALIBRATION, ExemplarDetector, ViewDatabase, adapt, load_adaptation, patch_features,
                           region_features)
from core.evalsets import DatasetNotFound, EvalSet
from core.features import PAIRS, FeatureExtractor
from core.io import atomic_dir, read_image, rng_for, write_manifest, write_metrics
from core.params import EvalDatasetParams, Params
from stages._cli import stage_main
from models.adaptation import Adaptation
from stages.evaluate import open_dataset

log = logging.getLogger("cad2real.exemplar")

EXAMPLES = 6  # images drawn with their detections
IDENTITY = Adaptation("none", 1, 1)


class Images:
    """The proposals and their (un-adapted) features of every readable image of a dataset,
    and its ground truth per category."""

    def __init__(self, evalset: EvalSet, extractor: FeatureExtractor, layer: str, params: Params):
        self.evalset = evalset
        self.ids: list[str] = []
        self.boxes: list[np.ndarray] = []
        self.features: list[np.ndarray] = []
        self.paths: list[Path] = []
        self.unreadable: list[str] = []
        self.gt: dict[str, dict[str, list[tuple[tuple, bool]]]] = {}
        self.gt_azimuth: dict[str, dict[str, list[float | None]]] = {}
        for image in tqdm(evalset.images, desc=f"proposals {evalset.name}", unit="img", mininterval=2.0):
            try:
                pixels = read_image(image.image)
            except ValueError as exc:
                self.unreadable.append(str(exc))
                log.warning("exemplar: %s; the image is left out", exc)
                continue
            boxes, feats = region_features(extractor, pixels, layer, params.exemplar)
            self.ids.append(image.image_id)
            self.paths.append(image.image)
            self.boxes.append(boxes)
            self.features.append(feats)
            for obj in image.objects:
                box = obj.bbox or (0.0, 0.0, float(pixels.shape[1]), float(pixels.shape[0]))
                self.gt.setdefault(obj.category, {}).setdefault(image.image_id, []).append((box, obj.difficult))
                self.gt_azimuth.setdefault(obj.category, {}).setdefault(image.image_id, []).append(obj.azimuth)

    @property
    def categories(self) -> list[str]:
        return sorted(self.gt)

    def windows(self) -> int:
        return int(sum(len(b) for b in self.boxes))


def detect_all(detector: ExemplarDetector, features: list[np.ndarray], images: Images) -> list[tuple[str, dict]]:
    """(image_id, detection) of every image, from its proposals' ``features``."""
    out = []
    for image_id, boxes, feats in zip(images.ids, images.boxes, features, strict=True):
        out += [(image_id, d) for d in detector.detections(detector.score(boxes, feats))]
    return out


def average_precision(found: list[tuple[str, dict[str, Any]]], images: Images, iou: float,
                      recall: float | None = None) -> dict[str, Any]:
    """VOC AP per category with objects, their mean, and (with ``recall``) the azimuth
    errors of the correct detections at that recall, pooled over categories."""
    per_class, errors = {}, []
    for category in images.categories:
        of_category = [(image_id, d) for image_id, d in found if d["category"] == category]
        dets = [(image_id, d["score"], d["box"]) for image_id, d in of_category]
        result = metrics.voc_ap(dets, images.gt[category], iou_threshold=iou)
        per_class[category] = result["ap"]
        if recall is not None and result["n_positives"]:
            correct = result["gt_index"] >= 0
            rows = [of_category[i] for i in result["detection_index"]]
            gt_az = [images.gt_azimuth[category][image_id][j] if j >= 0 else None
                     for (image_id, _), j in zip(rows, result["gt_index"], strict=True)]
            err = [ex.azimuth_difference(d["azimuth"], a) if a is not None else np.nan
                   for (_, d), a in zip(rows, gt_az, strict=True)]
            errors += ex.errors_at_recall(correct, np.array(err, float), result["n_positives"], recall).tolist()
    values = [v for v in per_class.values() if not np.isnan(v)]
    out: dict[str, Any] = {"map": float(np.mean(values)) if values else float("nan"),
                           # None: no non-difficult object of the class (VOC's AP is undefined)
                           "per_class_ap": {k: None if np.isnan(v) else round(float(v), 4)
                                            for k, v in per_class.items()}}
    if recall is not None:
        e = np.array([x for x in errors if not np.isnan(x)])
        out["azimuth"] = {"recall": recall, "detections": int(len(e)),
                          "within_20deg": round(float((e <= 20.0).mean()), 4) if len(e) else None,
                          "median_error_deg": round(float(np.median(e)), 2) if len(e) else None,
                          "errors": [round(float(x), 1) for x in e]}
    return out


class Experiment:
    """Builds the detectors of the comparison from one view database and its φ's."""

    def __init__(self, params: Params, db: ViewDatabase, layer: str, extractor: FeatureExtractor,
                 categories: list[str]):
        self.params, self.db, self.layer, self.categories = params, db, layer, categories
        self.clean = db.features[layer]
        self.composites, missing = composite_exemplars(Path(params.paths.adaptation), db)
        if missing:
            log.warning("exemplar: %d of %d views have no composite (adaptation pair); their clean render "
                        "stands in for the 'composites' exemplars", missing, len(db.views))
        backgrounds = load_backgrounds(params.composite.backgrounds, params.seed)
        self.patch_features = patch_features(extractor, [b.image for b in backgrounds],
                                             params.exemplar.calibration_patches, layer, params.exemplar,
                                             rng_for(params.seed, "exemplar", "patches"))
        log.info("exemplar: %d random patches of %d backgrounds (no object annotated) calibrate the scores",
                 len(self.patch_features), len(backgrounds))
        self._cache: dict[tuple[str, str], Any] = {}
        self.phis = {v: load_adaptation(params.paths.adaptation, v)[0]
                     for v in dict.fromkeys(["none", params.adaptation.default, *params.adaptation.variants])}

    def adapted(self, variant: str, features: list[np.ndarray]) -> list[np.ndarray]:
        """φ of ``variant`` applied to each image's proposal features, computed once per
        variant (φ of 3,000 windows costs more than scoring them against the views)."""
        key = ("images", variant)
        if key not in self._cache:
            self._cache[key] = [adapt(self.phis[variant], f) for f in features]
        return self._cache[key]

    def detector(self, variant: str, exemplars: str = "clean", calibrated: bool = True,
                 views: np.ndarray | None = None, tau: float | None = None) -> ExemplarDetector:
        """The detector of one configuration; it takes features φ has already adapted
        (:meth:`adapted`), so its own φ is the identity."""
        p = self.params.exemplar if tau is None else self.params.exemplar.model_copy(update={"aspect_tau": tau})
        y = self.clean if exemplars == "clean" else self.composites
        rows = np.arange(len(y)) if views is None else views
        det = ExemplarDetector(y[rows], self.db.views.iloc[rows], IDENTITY, p, self.categories)
        if calibrated:
            if ("patches", variant) not in self._cache:
                self._cache[("patches", variant)] = adapt(self.phis[variant], self.patch_features)
            key = ("calibration", f"{variant}/{exemplars}")  # tau does not change it
            if views is not None:  # a subset of the views: fitted for those
                det.calibrate(self._cache[("patches", variant)])
            else:
                if key not in self._cache:
                    self._cache[key] = det.calibrate(self._cache[("patches", variant)])
                det.set_calibration(self._cache[key])
        return det


def composite_exemplars(adaptation_dir: Path, db: ViewDatabase) -> tuple[np.ndarray, int]:
    """Features of each view's composite (train_adaptation's pairs.npz), aligned with the
    database; views without one keep their clean features. Returns them and how many."""
    out = db.features[next(iter(db.features))].copy()
    path = adaptation_dir / PAIRS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no adaptation pair features (run the train_adaptation stage)")
    with np.load(path, allow_pickle=False) as pairs:
        index = {s: i for i, s in enumerate(pairs["sample_id"].tolist())}
        x = pairs["x"].astype(np.float32)
    if x.shape[1] != out.shape[1]:
        raise ValueError(f"{path}: features of dimension {x.shape[1]}, the view database's are {out.shape[1]}; "
                         "re-run train_adaptation")
    rows = [index.get(s) for s in db.views["sample_id"]]
    have = np.array([r is not None for r in rows])
    out[have] = x[[r for r in rows if r is not None]]
    return out, int((~have).sum())


def subsets(db: ViewDatabase, p_counts: tuple[int, ...], seed: int, kind: str) -> dict[int, np.ndarray]:
    """Random view indices: ``kind`` "views": n views; "models": every view of n models."""
    rng = rng_for(seed, "exemplar", kind)
    out = {}
    if kind == "views":
        order = rng.permutation(len(db.views))
        out = {n: np.sort(order[:n]) for n in p_counts if n < len(db.views)}
    else:
        models = rng.permutation(np.array(sorted(db.views["model_id"].unique())))
        out = {n: np.nonzero(db.views["model_id"].isin(models[:n]).to_numpy())[0] for n in p_counts
               if n < len(models)}
    return out


def evaluate_dataset(exp: Experiment, images: Images, folder: Path, plots_dir: Path,
                     name: str) -> dict[str, Any]:
    p, ad = exp.params.exemplar, exp.params.adaptation
    iou = p.iou_threshold
    runs: dict[str, Any] = {}

    def measure(label: str, det: ExemplarDetector, recall: float | None = None, variant: str = "none") -> dict:
        found = detect_all(det, exp.adapted(variant, images.features), images)
        runs[label] = average_precision(found, images, iou, recall)
        log.info("exemplar: %-44s mAP %.3f", f"{name} {label}", runs[label]["map"])
        return {"found": found, **runs[label]}

    main = measure(f"adapted[{ad.default}] calibrated", exp.detector(ad.default), p.azimuth_recall, ad.default)
    table42 = {"adapted": {}, "composites": {}, "white": {}}
    table42["adapted"]["calibrated"] = main["map"]
    table42["adapted"]["raw"] = measure(f"adapted[{ad.default}] raw", exp.detector(ad.default, calibrated=False),
                                        variant=ad.default)["map"]
    for column, exemplars in (("composites", "composites"), ("white", "clean")):
        for row, cal in (("raw", False), ("calibrated", True)):
            table42[column][row] = measure(f"{column} {row}", exp.detector("none", exemplars, cal))["map"]
    variants = {ad.default: main["map"]}
    for v in dict.fromkeys(["none", *ad.variants]):
        if v not in variants:
            variants[v] = measure(f"variant {v} calibrated", exp.detector(v), variant=v)["map"]
    taus = {}
    for tau in p.taus:
        taus[tau] = main["map"] if tau == p.aspect_tau else \
            measure(f"adapted tau={tau}", exp.detector(ad.default, tau=tau), variant=ad.default)["map"]
    n_views = {n: measure(f"{n} random views", exp.detector(ad.default, views=rows), variant=ad.default)["map"]
               for n, rows in subsets(exp.db, p.view_counts, exp.params.seed, "views").items()}
    n_views[len(exp.db.views)] = main["map"]
    n_models = {n: {"views": int(len(rows)),
                    "map": measure(f"{n} random models", exp.detector(ad.default, views=rows),
                                   variant=ad.default)["map"]}
                for n, rows in subsets(exp.db, p.model_counts, exp.params.seed, "models").items()}
    n_models[int(exp.db.views["model_id"].nunique())] = {"views": len(exp.db.views), "map": main["map"]}

    write_manifest(detection_table(main["found"]), folder / f"{name}_detections.parquet")
    plots.curves_png(list(taus), {f"adapted ({ad.default}), calibrated": list(taus.values())},
                     f"{name} ({images.evalset.domain}): AP against the aspect-ratio threshold",
                     plots_dir / f"{name}_ap_vs_tau.png", xlabel="tau", ylabel="mAP")
    azimuth = main["azimuth"]
    if azimuth["errors"]:
        plots.histogram_png(azimuth["errors"], np.arange(0, 181, 10), f"{name}: azimuth error of the correct "
                            f"detections at {int(100 * p.azimuth_recall)}% recall", plots_dir / f"{name}_azimuth.png",
                            xlabel="azimuth error (degrees)")
    draw_examples(images, main["found"], plots_dir / f"{name}_examples.jpg")
    return {"domain": images.evalset.domain, "images": len(images.ids), "objects": int(sum(
        len(v) for c in images.gt.values() for v in c.values())), "unreadable": images.unreadable,
        "windows_per_image": round(images.windows() / max(len(images.ids), 1), 1),
        "main": {"variant": ad.default, "calibrated": True, "map": round(main["map"], 4),
                 "per_class_ap": main["per_class_ap"], "azimuth": {k: v for k, v in azimuth.items() if k != "errors"}},
        "table_4_2": {c: {r: round(v, 4) for r, v in rows.items()} for c, rows in table42.items()},
        "variants": {k: round(v, 4) for k, v in variants.items()},
        "aspect_tau": {str(k): round(v, 4) for k, v in taus.items()},
        "n_views": {str(k): round(v, 4) for k, v in sorted(n_views.items())},
        "n_models": {str(k): {"views": v["views"], "map": round(v["map"], 4)} for k, v in sorted(n_models.items())}}


def detection_table(found: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    rows = [{"image_id": image_id, **{k: v for k, v in d.items() if k != "box"},
             **dict(zip(("x0", "y0", "x1", "y1"), d["box"], strict=True))} for image_id, d in found]
    return pd.DataFrame(rows, columns=["image_id", "category", "score", "view", "model_id", "sample_id", "azimuth",
                                       "elevation", "theta", "x0", "y0", "x1", "y1"])


def draw_examples(images: Images, found: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    """The first images with their ground truth (green) and detections scoring >= 0 (red)."""
    tiles = []
    for image_id, image_path in list(zip(images.ids, images.paths, strict=True))[:EXAMPLES]:
        canvas = read_image(image_path).copy()
        for category, per_image in images.gt.items():
            for box, _ in per_image.get(image_id, []):
                cv2.rectangle(canvas, (int(box[0]), int(box[1])), (int(box[2]) - 1, int(box[3]) - 1), (0, 200, 0), 1)
        for i, d in [(i, d) for i, d in found if i == image_id and d["score"] >= 0.0][:5]:
            x0, y0, x1, y1 = (int(v) for v in d["box"])
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), (220, 0, 0), 1)
            cv2.putText(canvas, f"{d['category'][:8]} {d['azimuth']:.0f}", (x0 + 2, y0 + 10), cv2.FONT_HERSHEY_SIMPLEX,
                        0.32, (220, 0, 0), 1, cv2.LINE_AA)
        tiles.append(cv2.resize(canvas, (256, 256)))
    if tiles:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))


def open_detection_set(d: EvalDatasetParams, params: Params) -> EvalSet | None:
    try:
        return open_dataset(d, params)
    except DatasetNotFound as exc:
        if d.required:
            raise
        log.info("exemplar: skipped: %s", exc)
        return None


def run(params: Params) -> dict[str, Any]:
    layer = params.adaptation.layer
    db = ViewDatabase(params.paths.view_features, layers=[layer])
    extractor = FeatureExtractor(params.features, layers=[layer], seed=params.seed)
    if extractor.info["source"] != db.info.get("source"):
        raise ValueError(f"{db.folder}: the view database was built with {db.info.get('source')} weights, the "
                         f"backbone now loads {extractor.info['source']}; re-run the view_features stage")
    categories = sorted(db.views["category"].unique())
    exp = Experiment(params, db, layer, extractor, categories)
    _, meta = load_adaptation(params.paths.adaptation)
    out = Path(params.paths.exemplar)
    plots_dir = Path(params.paths.plots) / "exemplar"
    values: dict[str, Any] = {"layer": layer, "views": len(db.views), "models": int(db.views["model_id"].nunique()),
                              "weights_source": db.info.get("source"), "adaptation_default": params.adaptation.default,
                              "datasets": {}, "skipped": {}}
    with atomic_dir(out) as tmp:
        main = exp.detector(params.adaptation.default)
        c, d = main.calibration  # type: ignore[misc]
        np.savez(tmp / CALIBRATION, c=c, d=d, sample_id=db.views["sample_id"].to_numpy().astype(str),
                 variant=np.array(params.adaptation.default), layer=np.array(layer))
        for dp in params.exemplar.datasets:
            evalset = open_detection_set(dp, params)
            if evalset is None:
                values["skipped"][dp.name] = f"skipped: {dp.name} not found"
                continue
            images = Images(evalset, extractor, layer, params)
            log.info("exemplar: %s (%s): %d images, %d windows each on average, %d views", dp.name, evalset.domain,
                     len(images.ids), images.windows() / max(len(images.ids), 1), len(db.views))
            values["datasets"][dp.name] = evaluate_dataset(exp, images, tmp, plots_dir, dp.name)
    write_metrics(params.paths.metrics, "exemplar", values)
    report = Path(params.paths.reports) / "exemplar.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_report(values, meta))
    log.info("exemplar: wrote detections and calibration to %s, the tables to %s", out, report)
    return values


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.1f}"


def render_report(values: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
    """The tables of seed 004 §4.4 in Markdown (also a section of RESULTS.md)."""
    lines = [f"Exemplar detection (seed 004 §4.3): layer {values['layer']} of the view database "
             f"({values['views']} rendered views of {values['models']} models, {values['weights_source']} weights), "
             f"VOC AP (%) at IoU 0.5, mean over categories."]
    for name, r in values["datasets"].items():
        t = r["table_4_2"]
        lines += ["", f"#### {name} — {r['domain']}: {r['images']} images, {r['objects']} objects, "
                      f"{r['windows_per_image']:.0f} windows per image", "",
                  "Table 4.2 shape (exemplars x calibration):", "",
                  f"| | adaptation ({r['main']['variant']}) | no adaptation: composites | no adaptation: white bg |",
                  "| --- | --- | --- | --- |"]
        for row, label in (("raw", "no calibration"), ("calibrated", "with calibration")):
            lines.append(f"| {label} | {_pct(t['adapted'][row])} | {_pct(t['composites'][row])} | "
                         f"{_pct(t['white'][row])} |")
        lines += ["", "Adaptation variants (Fig. 4.8 shape, calibrated, tau 0.9):", "",
                  "| " + " | ".join(r["variants"]) + " |", "|" + " --- |" * len(r["variants"]),
                  "| " + " | ".join(_pct(v) for v in r["variants"].values()) + " |",
                  "", "AP against the aspect-ratio threshold tau:", "",
                  "| tau | " + " | ".join(r["aspect_tau"]) + " |", "| --- |" + " --- |" * len(r["aspect_tau"]),
                  "| mAP | " + " | ".join(_pct(v) for v in r["aspect_tau"].values()) + " |",
                  "", "Table 4.3 shape: (a) number of rendered views, (b) number of models:", "",
                  "| # views | " + " | ".join(r["n_views"]) + " |", "| --- |" + " --- |" * len(r["n_views"]),
                  "| mAP | " + " | ".join(_pct(v) for v in r["n_views"].values()) + " |", "",
                  "| # models | " + " | ".join(r["n_models"]) + " |", "| --- |" + " --- |" * len(r["n_models"]),
                  "| # views | " + " | ".join(str(v["views"]) for v in r["n_models"].values()) + " |",
                  "| mAP | " + " | ".join(_pct(v["map"]) for v in r["n_models"].values()) + " |"]
        az = r["main"]["azimuth"]
        if az["detections"]:
            lines += ["", f"Pose of the correct detections at {int(100 * az['recall'])}% recall (Fig. 4.9): "
                          f"{az['detections']} detections, {_pct(az['within_20deg'])}% within 20° of the true "
                          f"azimuth, median error {az['median_error_deg']}°."]
        lines += ["", "Per-category AP (main configuration): " + ", ".join(
            f"{k} {_pct(v)}" for k, v in r["main"]["per_class_ap"].items())]
    for name, why in values["skipped"].items():
        lines += ["", f"{name}: {why}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    stage_main("exemplar", run)


if __name__ == "__main__":
    main()
