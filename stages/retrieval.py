"""retrieval stage: cross-domain retrieval of rendered views from photos (seed 004 §3.2-3.3).

Each object of ``retrieval.datasets`` (entries of ``evaluate.datasets``: the SYNTHETIC
proxy-real set, the real IKEA photos when present) is cropped to its box, turned into
features of every layer of the view database, and matched against every rendered view of
the dataset's classes (closed set) with the L2, dot and cosine similarities of eq. 3.1-3.3,
keeping only views whose aspect ratio is compatible (eq. 3.4, τ = ``retrieval.aspect_tau``).
The category of the best-matching view is the prediction; the instance is right when its
model is the object's own (only where the object's model is in the database); the pose of
the match is the viewpoint estimate. The adapted features φ(x) (train_adaptation) are
one more row at the adaptation layer.

Multi-view (§3.3): the images of one object instance (the proxy-real set has several per
held-out model) choose one model by eq. 3.9 (Σ_n max_v s) among the database's, then a
view per image by eq. 3.10; images whose box touches the border (truncated) are left out,
as the seed does.

Outputs: ``paths.retrieval``/<dataset>_matches.parquet (top-k views of each query in the
main configuration: the adaptation layer, adapted, cosine), ``paths.metrics``/retrieval.json,
``paths.reports``/retrieval.md (the layer x similarity table, Table 3.5's shape),
``paths.plots``/retrieval/<dataset>_examples.jpg.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from core import exemplar as ex
from core import metrics
from core.detector import ViewDatabase, adapt, load_adaptation
from core.evalsets import DatasetNotFound, EvalSet, crop_object
from core.features import FeatureExtractor
from core.io import MANIFEST, atomic_dir, read_image, read_manifest, write_manifest, write_metrics
from core.params import EvalDatasetParams, Params
from stages._cli import stage_main
from stages.evaluate import ImageCache, open_dataset

log = logging.getLogger("cad2real.retrieval")

EXAMPLES = 8  # queries drawn with their best matches
ADAPTED = "_phi"  # the layer-name suffix of the adapted row (MLflow metric names allow no "+")


@dataclass
class Queries:
    """The objects of one dataset that could be read: image and box, label, pose, instance."""

    images: list[np.ndarray]  # the object's whole image (shared by the objects of one image)
    boxes: list[tuple[float, float, float, float]]
    category: np.ndarray
    instance: np.ndarray  # model id / product name, "" when unknown
    viewpoint: np.ndarray | None  # (N, 3) azimuth, elevation, theta when every object has one
    truncated: np.ndarray
    unreadable: list[str]

    @property
    def aspect(self) -> np.ndarray:
        return ex.box_aspect(np.array(self.boxes, np.float64))


def dataset_params(params: Params, name: str) -> EvalDatasetParams:
    for d in params.evaluate.datasets:
        if d.name == name:
            return d
    raise ValueError(f"retrieval.datasets: {name!r} is not an evaluate.datasets entry "
                     f"(defined: {[d.name for d in params.evaluate.datasets]})")


def queries(evalset: EvalSet, known: set[str], d: EvalDatasetParams) -> Queries:
    """Crops of the non-difficult objects of known classes; unreadable images are listed."""
    images, boxes, cats, inst, views, trunc = [], [], [], [], [], []
    cache = ImageCache("retrieval")
    for image, obj in evalset.objects():
        if obj.category not in known or (d.exclude_difficult and obj.difficult):
            continue
        pixels = cache.get(image.image)
        if pixels is None:
            continue
        h, w = pixels.shape[:2]
        box = obj.bbox or (0.0, 0.0, float(w), float(h))
        images.append(pixels)
        boxes.append(box)
        cats.append(obj.category)
        inst.append(obj.instance or "")
        views.append(None if obj.azimuth is None else (obj.azimuth, obj.elevation or 0.0, obj.theta or 0.0))
        trunc.append(bool(obj.truncated) or box[0] <= 0 or box[1] <= 0 or box[2] >= w or box[3] >= h)
    viewpoint = np.array(views, float) if views and all(v is not None for v in views) else None
    return Queries(images, boxes, np.array(cats), np.array(inst), viewpoint, np.array(trunc, bool),
                   cache.unreadable)


def score_configuration(scores: np.ndarray, q: Queries, views: pd.DataFrame, label_set: list[str],
                        k: int) -> dict[str, Any]:
    """Metrics of one layer x similarity: category (top-1 and top-k), instance, pose."""
    ranked = ex.top_k(scores, k)
    cats = views["category"].to_numpy()
    models = views["model_id"].to_numpy()
    pred = cats[ranked[:, 0]]
    out: dict[str, Any] = {
        "accuracy": round(metrics.accuracy(q.category, pred), 4),
        "mean_class_accuracy": round(metrics.mean_class_accuracy(q.category, pred, label_set), 4),
        f"top{k}_category": round(float(np.mean([c in cats[r] for c, r in zip(q.category, ranked, strict=True)])), 4),
    }
    in_db = np.isin(q.instance, models)
    out["instance_queries"] = int(in_db.sum())
    out["instance_accuracy"] = round(float((models[ranked[in_db, 0]] == q.instance[in_db]).mean()), 4) \
        if in_db.any() else None
    if q.viewpoint is not None:
        right = pred == q.category
        if right.any():
            est = views[["azimuth", "elevation", "theta"]].to_numpy(float)[ranked[right, 0]]
            vm = metrics.viewpoint_metrics(est, q.viewpoint[right])
            out["viewpoint"] = {"objects": int(right.sum()), "acc_pi_6": round(vm["acc_pi_6"], 4),
                                "median_error_deg": round(vm["median_error_deg"], 2)}
    return out


def multiview(scores: np.ndarray, q: Queries, views: pd.DataFrame) -> dict[str, Any] | None:
    """Eq. 3.9-3.10 over the images of each instance (truncated ones left out): category
    accuracy of the chosen model per instance, and the viewpoint of each image."""
    groups = pd.Series(np.arange(len(q.boxes))).groupby(q.instance)
    models = np.array(sorted(views["model_id"].unique()))
    view_model = np.searchsorted(models, views["model_id"].to_numpy())
    cats = views.groupby("model_id")["category"].first().reindex(models).to_numpy()
    right, pose_est, pose_gt, used = [], [], [], 0
    for instance, idx in groups:
        rows = [i for i in idx.to_numpy() if not q.truncated[i]]
        if not instance or len(rows) < 2:
            continue
        m_hat, v_hat = ex.multiview_choice(scores[rows], view_model, len(models))
        right.append(cats[m_hat] == q.category[rows[0]])
        used += len(rows)
        if q.viewpoint is not None and right[-1]:
            pose_est.append(views[["azimuth", "elevation", "theta"]].to_numpy(float)[v_hat])
            pose_gt.append(q.viewpoint[rows])
    if not right:
        return None
    out: dict[str, Any] = {"instances": len(right), "images": used,
                           "category_accuracy": round(float(np.mean(right)), 4)}
    if pose_est:
        vm = metrics.viewpoint_metrics(np.concatenate(pose_est), np.concatenate(pose_gt))
        out["viewpoint"] = {"acc_pi_6": round(vm["acc_pi_6"], 4), "median_error_deg": round(vm["median_error_deg"], 2)}
    return out


def query_features(extractor: FeatureExtractor, q: Queries, phi_layer: str, phi: Any) -> dict[str, np.ndarray]:
    feats = extractor.many(list(zip(q.images, q.boxes, strict=True)), desc="retrieval queries")
    if phi is not None:
        feats[phi_layer + ADAPTED] = adapt(phi, feats[phi_layer])
    return feats


def run_dataset(params: Params, db: ViewDatabase, extractor: FeatureExtractor, phi: Any, evalset: EvalSet,
                d: EvalDatasetParams, out: Path) -> dict[str, Any]:
    p = params.retrieval
    known = set(db.views["category"])
    q = queries(evalset, known, d)
    label_set = sorted(set(evalset.categories) & known)
    keep = db.views["category"].isin(label_set).to_numpy()
    views = db.views[keep].reset_index(drop=True)
    if not q.boxes:
        raise ValueError(f"{evalset.root}: no readable object of the view database's classes {sorted(known)}")
    feats = query_features(extractor, q, params.adaptation.layer, phi)
    mask = ex.aspect_compatible(q.aspect, views["aspect"].to_numpy(), p.aspect_tau)
    table: dict[str, dict[str, Any]] = {}
    multi: dict[str, dict[str, Any]] = {}
    for layer, f in feats.items():
        y = db.features[layer.removesuffix(ADAPTED)][keep]
        for sim in (("cos",) if layer.endswith(ADAPTED) else p.similarities):
            scores = ex.masked(ex.similarity(f, y, sim), mask)
            table.setdefault(layer, {})[sim] = score_configuration(scores, q, views, label_set, p.top_k)
            mv = multiview(scores, q, views)
            if mv is not None:
                multi.setdefault(layer, {})[sim] = mv
    # The seed's recommendation (pool4 + cosine; here the adaptation layer, adapted when φ
    # exists) is the configuration whose matches are kept: chosen a priori, not on this data.
    layer = params.adaptation.layer + (ADAPTED if phi is not None else "")
    scores = ex.masked(ex.similarity(feats[layer], db.features[params.adaptation.layer][keep], "cos"), mask)
    ranked = ex.top_k(scores, p.top_k)
    write_manifest(pd.DataFrame({
        "query": np.arange(len(q.boxes)), "category": q.category, "instance": q.instance,
        **{f"match{j}_{c}": views[c].to_numpy()[ranked[:, j]] for j in range(ranked.shape[1])
           for c in ("sample_id", "model_id", "category")},
    }), out / f"{d.name}_matches.parquet")
    draw_examples(q, views, ranked, Path(params.paths.renders), Path(params.paths.plots) / "retrieval" /
                  f"{d.name}_examples.jpg")
    main = table[layer]["cos"]
    log.info("retrieval: %s (%s): %d objects; %s/cos: accuracy %.3f, per-class mean %.3f", d.name, evalset.domain,
             len(q.boxes), layer, main["accuracy"], main["mean_class_accuracy"])
    return {"domain": evalset.domain, "objects": len(q.boxes), "label_set": label_set, "views": int(len(views)),
            "unreadable": q.unreadable, "main": {"layer": layer, "similarity": "cos", **main},
            "table": table, "multiview": multi}


def draw_examples(q: Queries, views: pd.DataFrame, ranked: np.ndarray, renders: Path, path: Path) -> None:
    """Rows of query crop + its three best views (grey, as matched)."""
    frame = read_manifest(renders / MANIFEST)
    rgb = dict(zip(frame["sample_id"], frame["rgb"], strict=True))
    rows = []
    for i in np.linspace(0, len(q.boxes) - 1, min(EXAMPLES, len(q.boxes))).astype(int):
        tiles = [crop_object(q.images[i], q.boxes[i])]
        for j in ranked[i, :3]:
            sample = views.iloc[int(j)]
            tiles.append(read_image(renders / rgb[sample["sample_id"]]))
        rows.append(np.concatenate([cv2.resize(cv2.cvtColor(cv2.cvtColor(t, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB),
                                               (96, 96)) for t in tiles], axis=1))
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def run(params: Params) -> dict[str, Any]:
    p = params.retrieval
    db = ViewDatabase(params.paths.view_features)
    extractor = FeatureExtractor(params.features, layers=list(db.features), seed=params.seed)
    try:
        phi, _ = load_adaptation(params.paths.adaptation)
    except FileNotFoundError as exc:
        log.info("retrieval: no adapted row: %s", exc)
        phi = None
    values: dict[str, Any] = {"views": len(db.views), "weights_source": db.info.get("source"),
                              "aspect_tau": p.aspect_tau, "datasets": {}, "skipped": {}}
    out = Path(params.paths.retrieval)
    with atomic_dir(out) as tmp:
        for name in p.datasets:
            d = dataset_params(params, name)
            try:
                evalset = open_dataset(d, params)
            except DatasetNotFound as exc:
                if d.required:
                    raise
                values["skipped"][name] = f"skipped: {exc}"
                log.info("retrieval: skipped: %s", exc)
                continue
            values["datasets"][name] = run_dataset(params, db, extractor, phi, evalset, d, tmp)
    write_metrics(params.paths.metrics, "retrieval", values)
    report = Path(params.paths.reports) / "retrieval.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_report(values))
    log.info("retrieval: wrote matches to %s and the tables to %s", out, report)
    return values


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def render_report(values: dict[str, Any]) -> str:
    """Table 3.5's shape per dataset (category accuracy, per-class mean), then multi-view."""
    lines = [f"Retrieval of rendered views (seed 004 §3.2): {values['views']} views, "
             f"{values['weights_source']} weights, aspect-ratio filter tau = {values['aspect_tau']}. "
             "Cells: accuracy / per-class mean (%) of the best match's category."]
    for name, r in values["datasets"].items():
        sims = sorted({s for row in r["table"].values() for s in row}, key=["l2", "dot", "cos"].index)
        lines += ["", f"#### {name} — {r['domain']}: {r['objects']} objects, {r['views']} views of "
                      f"{', '.join(r['label_set'])}", "",
                  "| layer | " + " | ".join(sims) + " |", "| --- |" + " --- |" * len(sims)]
        for layer, row in r["table"].items():
            cells = [f"{_pct(row[s]['accuracy'])} / {_pct(row[s]['mean_class_accuracy'])}" if s in row else ""
                     for s in sims]
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        if r["multiview"]:
            lines += ["", "Multi-view (eq. 3.9-3.10, cosine): category accuracy of the model chosen per instance; "
                          "Acc@pi/6 of the per-image views:", "",
                      "| layer | instances | category | single-view category | Acc@pi/6 |",
                      "| --- | --- | --- | --- | --- |"]
            for layer, row in r["multiview"].items():
                if "cos" in row:
                    mv, sv = row["cos"], r["table"][layer]["cos"]
                    lines.append(f"| {layer} | {mv['instances']} | {_pct(mv['category_accuracy'])} | "
                                 f"{_pct(sv['accuracy'])} | {_pct(mv.get('viewpoint', {}).get('acc_pi_6'))} |")
    for name, why in values["skipped"].items():
        lines += ["", f"{name}: {why}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    stage_main("retrieval", run)


if __name__ == "__main__":
    main()
