"""Stage ``evaluate@<method>``: one trained model on every configured evaluation dataset.

For each dataset of ``evaluate.datasets`` (read from its own files by
:mod:`core.evalsets`; a missing one is a "skipped: <dataset> not found at <path>" line),
every object is cropped by its box and classified; predictions are restricted to the
dataset's own label set (closed set) unless ``restrict_to_dataset_classes`` is off.
Writes ``<paths.metrics>/evaluate/<method>.json`` (per dataset: overall and per-class accuracy,
per-class mean accuracy, calibration, viewpoint errors when the model has a viewpoint
head, with each metric's convention card), plots under ``<paths.plots>/evaluate/<method>``
(confusion matrices, per-class bars, reliability diagrams; confusion CSVs for ``dvc plots``),
the per-object predictions under ``<paths.evaluation>/<method>`` and
``<paths.reports>/evaluate/<method>.md``.
Detection AP/AVP need a detector: for a classifier they are reported as not applicable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from core import metrics, plots
from core.contracts import validate_evalset
from core.evalsets import DatasetNotFound, EvalSet, crop_object, open_evalset
from core.io import atomic_dir, read_image, stable_hash, write_manifest, write_metrics
from core.params import EvalDatasetParams, EvaluateParams, Params
from core.predictors import Predictor, load_predictor
from stages._cli import stage_main

log = logging.getLogger("cad2real.evaluate")
NOT_APPLICABLE_DETECTION = "not applicable: the model is a classifier (AP/AVP need a detector)"


@dataclass(frozen=True)
class ObjectRow:
    image: Path
    bbox: tuple[float, float, float, float] | None
    category: str
    viewpoint: tuple[float, float, float] | None
    instance: str | None


def open_dataset(d: EvalDatasetParams, params: Params) -> EvalSet:
    """The dataset of one ``evaluate.datasets`` entry (raises DatasetNotFound when absent)."""
    return open_evalset(d, params.paths.proxy_real)


def select_objects(evalset: EvalSet, d: EvalDatasetParams, known: set[str]) -> tuple[list[ObjectRow], dict]:
    """The objects to classify: exclusions applied, classes the model knows, a
    deterministic subset when ``max_objects`` is set. Also what was left out, and why."""
    rows, dropped = [], {"difficult": 0, "truncated": 0, "occluded": 0, "class_not_in_model": 0}
    for image, obj in evalset.objects():
        if d.exclude_difficult and obj.difficult:
            dropped["difficult"] += 1
        elif d.exclude_truncated and obj.truncated:
            dropped["truncated"] += 1
        elif d.exclude_occluded and obj.occluded:
            dropped["occluded"] += 1
        elif obj.category not in known:
            dropped["class_not_in_model"] += 1
        else:
            view = None if obj.azimuth is None else (obj.azimuth, obj.elevation or 0.0, obj.theta or 0.0)
            rows.append(ObjectRow(image.image, obj.bbox, obj.category, view, obj.instance))
    if d.max_objects is not None and len(rows) > d.max_objects:
        order = sorted(range(len(rows)), key=lambda i: stable_hash(d.name, str(rows[i].image), rows[i].bbox))
        rows = [rows[i] for i in sorted(order[: d.max_objects])]
    return rows, dropped


class ImageCache:
    """The image last read (the objects of one image come one after another) or None when
    it is unreadable; ``unreadable`` holds the messages, each naming its file."""

    def __init__(self, stage: str):
        self.stage, self.path, self.pixels = stage, None, None
        self.unreadable: list[str] = []

    def get(self, path: Path) -> np.ndarray | None:
        if path != self.path:
            self.path = path
            try:
                self.pixels = read_image(path)
            except ValueError as exc:
                self.pixels = None
                self.unreadable.append(str(exc))
                log.warning("%s: %s; its objects are left out", self.stage, exc)
        return self.pixels


def classify(predictor: Predictor, rows: list[ObjectRow], context: float, batch_size: int,
             desc: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, list[str]]:
    """Probabilities (N, C) and viewpoints (N, 3) or None for the objects whose image
    could be read, image by image in batches, and the messages of the unreadable ones
    (each naming its file; their objects are left out, the rest is still evaluated)."""
    probas, views = [], []
    ok = np.ones(len(rows), bool)
    cache = ImageCache("evaluate")
    with tqdm(total=len(rows), desc=desc, unit="obj", mininterval=2.0) as bar:
        for start in range(0, len(rows), batch_size):
            crops = []
            for i, row in enumerate(rows[start : start + batch_size], start=start):
                pixels = cache.get(row.image)
                if pixels is None:
                    ok[i] = False
                    continue
                crops.append(pixels if row.bbox is None else crop_object(pixels, row.bbox, context))
            if crops:
                probas.append(predictor.predict_proba(crops))
                v = predictor.predict_viewpoint(crops)
                if v is not None:
                    views.append(v)
            bar.update(len(crops))
    proba = np.concatenate(probas) if probas else np.zeros((0, len(predictor.categories)))
    return proba, (np.concatenate(views) if views else None), ok, cache.unreadable


def score(rows: list[ObjectRow], proba: np.ndarray, views: np.ndarray | None, model_classes: tuple[str, ...],
          label_set: list[str], n_bins: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dataset's metrics (JSON-ready) and the arrays the plots need."""
    columns = [model_classes.index(c) for c in label_set]
    p = proba[:, columns]
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    truth = np.array([r.category for r in rows])
    pred = np.array(label_set)[p.argmax(axis=1)]
    confidence = p.max(axis=1)
    correct = pred == truth
    per_class = metrics.per_class_accuracy(truth, pred, label_set)
    counts = {c: int((truth == c).sum()) for c in label_set}
    majority = max(counts.values()) / len(rows)
    ece = metrics.expected_calibration_error(confidence, correct, n_bins)
    out: dict[str, Any] = {
        "objects": len(rows),
        "accuracy": round(metrics.accuracy(truth, pred), 4),
        "mean_class_accuracy": round(metrics.mean_class_accuracy(truth, pred, label_set), 4),
        "per_class_accuracy": {c: (None if np.isnan(v) else round(v, 4)) for c, v in per_class.items()},
        "per_class_objects": counts,
        "chance": {"majority_class_accuracy": round(majority, 4),
                   "uniform_mean_class_accuracy": round(1.0 / len([c for c in counts if counts[c]]), 4)},
        "ece": round(ece, 4),
        "label_set": label_set,
    }
    if views is not None and all(r.viewpoint is not None for r in rows):
        gt = np.array([r.viewpoint for r in rows], float)
        vm = metrics.viewpoint_metrics(views, gt)
        out["viewpoint"] = {"acc_pi_6": round(vm["acc_pi_6"], 4), "median_error_deg": round(vm["median_error_deg"], 2)}
    extras = {"truth": truth, "pred": pred, "confidence": confidence,
              "confusion": metrics.confusion_matrix(truth, pred, label_set),
              "reliability": metrics.reliability_bins(confidence, correct, n_bins), "per_class": per_class,
              "counts": counts, "chance": 1.0 / len(label_set), "ece": ece}
    return out, extras


def write_plots(folder: Path, name: str, title: str, label_set: list[str], extras: dict[str, Any]) -> None:
    matrix = extras["confusion"]
    pd.DataFrame(
        [{"actual": label_set[i], "predicted": label_set[j]}
         for i in range(len(label_set)) for j in range(len(label_set)) for _ in range(int(matrix[i, j]))]
    ).to_csv(folder / f"{name}_confusion.csv", index=False)
    plots.confusion_png(matrix, label_set, title, folder / f"{name}_confusion.png")
    plots.per_class_png(extras["per_class"], extras["counts"], extras["chance"], title, folder / f"{name}_per_class.png")
    plots.reliability_png(extras["reliability"], extras["ece"], title, folder / f"{name}_reliability.png")


def evaluate(params: Params, p: EvaluateParams, predictor: Predictor, plots_dir: Path) -> tuple[dict, pd.DataFrame]:
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    tables = []
    for d in p.datasets:
        try:
            evalset = open_dataset(d, params)
        except DatasetNotFound as exc:
            if d.required:
                raise
            log.warning("%s (evaluate.datasets %s)", exc, d.name)
            skipped[d.name] = str(exc)
            continue
        contract = validate_evalset(evalset, name=d.name, image_sample=params.contracts.image_sample,
                                    seed=params.seed)
        if not contract.success:  # recorded and logged; unreadable photos are left out below
            log.warning("evaluate: %s (%s) fails its data contract:\n  %s", d.name, evalset.root,
                        "\n  ".join(contract.failures))
        known = set(predictor.categories)
        rows, dropped = select_objects(evalset, d, known)
        label_set = sorted({r.category for r in rows} | (set(evalset.categories) & known)) \
            if p.restrict_to_dataset_classes else list(predictor.categories)
        if not rows:
            log.warning("evaluate: %s has no object the model can be scored on (%s); skipped", d.name, dropped)
            skipped[d.name] = f"no objects to evaluate after exclusions {dropped}"
            continue
        proba, views, readable, unreadable = classify(predictor, rows, p.crop_context, p.batch_size,
                                                      f"evaluate {d.name}")
        dropped["unreadable_image"] = int((~readable).sum())
        rows = [r for r, keep in zip(rows, readable, strict=True) if keep]
        if not rows:
            skipped[d.name] = f"no readable image ({unreadable[0] if unreadable else 'none listed'})"
            continue
        result, extras = score(rows, proba, views, predictor.categories, label_set, p.reliability_bins)
        title = f"{d.name} ({evalset.domain})\nmodel trained on {predictor.info.get('training_data', '?')}"
        write_plots(plots_dir, d.name, title, label_set, extras)
        results[d.name] = {"domain": evalset.domain, "kind": d.kind, "split": d.split, "root": str(evalset.root),
                           "contract": {"success": contract.success, "failures": list(contract.failures),
                                        "expectations": contract.report["statistics"]["evaluated"]},
                           "excluded": dropped, "detection": NOT_APPLICABLE_DETECTION, **result,
                           **({"unreadable": unreadable[:20]} if unreadable else {})}
        tables.append(pd.DataFrame({
            "dataset": d.name, "image": [str(r.image) for r in rows],
            "bbox": [None if r.bbox is None else list(map(float, r.bbox)) for r in rows],
            "instance": [r.instance for r in rows], "category": extras["truth"], "predicted": extras["pred"],
            "confidence": extras["confidence"].astype(float),
        }))
        log.info("evaluate: %s (%s): %d objects, accuracy %.3f, per-class mean %.3f (chance %.3f / %.3f)",
                 d.name, evalset.domain, len(rows), result["accuracy"], result["mean_class_accuracy"],
                 result["chance"]["majority_class_accuracy"], result["chance"]["uniform_mean_class_accuracy"])
    predictions = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["dataset", "image", "bbox", "instance", "category", "predicted", "confidence"])
    return {"datasets": results, "skipped": skipped}, predictions


def report(values: dict[str, Any]) -> str:
    """The human-readable report (Markdown)."""
    model = values["model"]
    lines = [
        "# Evaluation report", "",
        f"Model `{model['name']}` ({model['kind']}: {model.get('method', '')}), "
        f"**trained on {model['training_data']}**. Real photos were never used for training; "
        "`val` splits are for choices, `test` splits for reporting.", "",
        "| dataset | domain | objects | accuracy | per-class mean | chance (majority / uniform) | ECE |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in values["datasets"].items():
        domain = r["domain"] if r["domain"] == "real" else f"**{r['domain']}**"
        lines.append(f"| {name} | {domain} | {r['objects']} | {r['accuracy']:.3f} | {r['mean_class_accuracy']:.3f} "
                     f"| {r['chance']['majority_class_accuracy']:.3f} / {r['chance']['uniform_mean_class_accuracy']:.3f}"
                     f" | {r['ece']:.3f} |")
    for name, why in values["skipped"].items():
        lines.append(f"| {name} | — | — | — | — | — | {why} |")
    for name, r in values["datasets"].items():
        lines += ["", f"## {name} — per class", "", "| class | objects | accuracy |", "| --- | --- | --- |"]
        lines += [f"| {c} | {r['per_class_objects'][c]} | {'—' if a is None else f'{a:.3f}'} |"
                  for c, a in r["per_class_accuracy"].items()]
        if "viewpoint" in r:
            lines += ["", f"Viewpoint: Acc@π/6 {r['viewpoint']['acc_pi_6']:.3f}, "
                      f"median error {r['viewpoint']['median_error_deg']:.1f}°"]
        contract = r.get("contract")
        if contract is not None:
            lines += ["", "Data contract (great-expectations `evalset` suite): " + (
                "passed" if contract["success"] else "FAILED — " + "; ".join(contract["failures"]))]
        lines += ["", f"Plots: `{name}_confusion.png`, `{name}_per_class.png`, `{name}_reliability.png`."]
    lines += ["", "## Conventions", ""]
    lines += [f"- **{k}**: {v}" for k, v in values["conventions"].items()]
    return "\n".join(lines) + "\n"


def run(params: Params, method: str) -> dict[str, Any]:
    p = params.evaluate
    model_dir = Path(params.paths.models) / method
    predictor = load_predictor(model_dir)
    log.info("evaluate@%s: model %s (%s, %d classes, trained on %s)", method, model_dir, predictor.info.get("kind"),
             len(predictor.categories), predictor.info.get("training_data", "?"))
    plots_dir = Path(params.paths.plots) / "evaluate" / method
    with atomic_dir(plots_dir) as tmp_plots:
        values, predictions = evaluate(params, p, predictor, tmp_plots)
    values = {
        "model": {"name": method, "kind": predictor.info.get("kind"), "method": predictor.info.get("method"),
                  "training_data": predictor.info.get("training_data", "unknown"),
                  "categories": list(predictor.categories)},
        **values,
        "conventions": {k: metrics.CONVENTIONS[k] for k in ("accuracy", "mean_class_accuracy", "ece", "viewpoint")}
        | {"label_set": "closed set: the argmax is taken over the dataset's own classes that the model knows"
           if p.restrict_to_dataset_classes else "open: the argmax is over every class of the model",
           "crop": f"objects cropped by their box with {p.crop_context:.0%} context, square-padded by reflection"},
    }
    with atomic_dir(Path(params.paths.evaluation) / method) as tmp:
        write_manifest(predictions, tmp / "predictions.parquet")
    metrics_file = write_metrics(Path(params.paths.metrics) / "evaluate", method, values)
    report_file = Path(params.paths.reports) / "evaluate" / f"{method}.md"
    report_file.parent.mkdir(parents=True, exist_ok=True)
    report_file.write_text(report(values))
    log.info("evaluate@%s: wrote %s, %s/, %s and %s", method, metrics_file, plots_dir, report_file,
             Path(params.paths.evaluation) / method)
    return values


def main() -> None:
    stage_main("evaluate", run, item="method")


if __name__ == "__main__":
    main()
