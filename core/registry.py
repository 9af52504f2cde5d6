"""The MLflow model registry: log a trained predictor, register it as ``challenger``, and
promote it to ``champion`` only when it is better.

The registered model is a pyfunc wrapping the predictor folder (``predictor.json`` +
weights): ``mlflow.pyfunc.load_model("models:/<name>@champion").predict(df)`` takes a
DataFrame with one column ``image`` of encoded image bytes (JPEG/PNG, any size) and
returns ``category`` and ``probability`` per row. The promotion rule
(:func:`decide`) is pure: contracts passed, the primary metric beats the champion's by
``min_improvement``, and no class drops by more than ``max_class_drop``. Every decision
and its reasons are tags on the version; the champion history (for rollback) is a tag
on the registered model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

log = logging.getLogger("cad2real.registry")

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"  # JSON list of versions that were champion, oldest first


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]
    metric: str
    challenger_value: float | None
    champion_value: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def primary_metric(metrics: Mapping[str, float], candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` (dotted metric keys) that ``metrics`` has."""
    return next((k for k in candidates if k in metrics), None)


def decide(challenger: Mapping[str, float], champion: Mapping[str, float] | None, *, contracts_passed: bool,
           candidates: tuple[str, ...], min_improvement: float, max_class_drop: float,
           min_class_objects: int = 0) -> Decision:
    """Promote the challenger or not, with every reason.

    ``challenger``/``champion`` are flattened evaluation metrics
    (``datasets.ikea_val.mean_class_accuracy``, ``datasets.ikea_val.per_class_accuracy.chair``).
    The primary metric is the first of ``candidates`` the challenger has; with no champion
    yet, a challenger that passed the contracts and has the metric is promoted. The class
    drop rule judges only classes with at least ``min_class_objects`` objects in the
    challenger's evaluation (``per_class_objects``; where counts are absent, every class):
    on 5 photos one photo moves a class by 0.2.
    """
    metric = primary_metric(challenger, candidates)
    reasons: list[str] = []
    if not contracts_passed:
        reasons.append("data contracts failed")
    if metric is None:
        reasons.append(f"none of the primary metrics {list(candidates)} was measured")
        return Decision(False, tuple(reasons), "", None)
    value = float(challenger[metric])
    if champion is None:
        if contracts_passed:
            return Decision(True, (f"no champion yet; {metric} = {value:.4f}",), metric, value)
        return Decision(False, tuple(reasons), metric, value)
    if metric not in champion:
        reasons.append(f"the champion has no {metric} to compare with")
        return Decision(False, tuple(reasons), metric, value)
    best = float(champion[metric])
    if value <= best + min_improvement:
        reasons.append(f"{metric} {value:.4f} does not beat the champion's {best:.4f} by more than "
                       f"{min_improvement:.4f}")
    dataset = metric.rsplit(".", 1)[0]
    prefix, counts = f"{dataset}.per_class_accuracy.", f"{dataset}.per_class_objects."
    drops = {k[len(prefix):]: float(champion[k]) - float(challenger[k])
             for k in champion if k.startswith(prefix) and k in challenger}
    small = sorted(c for c in drops if challenger.get(counts + c, min_class_objects) < min_class_objects)
    drops = {c: d for c, d in drops.items() if c not in small}
    worst = max(drops.items(), key=lambda kv: kv[1], default=None)
    if worst is not None and worst[1] > max_class_drop:
        reasons.append(f"class {worst[0]} drops by {worst[1]:.4f} (more than {max_class_drop:.4f})")
    promote = not reasons
    if promote:
        reasons.append(f"{metric} {value:.4f} beats the champion's {best:.4f}"
                       + (f"; largest class drop {worst[1]:.4f} ({worst[0]})" if worst else "")
                       + (f"; classes under {min_class_objects} objects not judged: {', '.join(small)}"
                          if small else ""))
    return Decision(promote, tuple(reasons), metric, value, best)


class ImageClassifier:
    """The pyfunc model: decodes image bytes and runs the predictor folder."""

    def __init__(self) -> None:
        self.predictor = None

    def load_context(self, context: Any) -> None:
        from core.predictors import load_predictor

        self.predictor = load_predictor(context.artifacts["predictor"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        images = [decode(b) for b in model_input["image"]]
        proba = self.predictor.predict_proba(images)
        best = proba.argmax(axis=1)
        return pd.DataFrame({"category": [self.predictor.categories[i] for i in best],
                             "probability": proba[np.arange(len(best)), best].astype(float)})


def decode(data: bytes) -> np.ndarray:
    """Encoded image bytes -> RGB uint8."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image (JPEG/PNG bytes expected)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def log_model(predictor_dir: Path, example_image: np.ndarray) -> Any:
    """Log the predictor folder as a pyfunc model in the active run, with its signature
    and an input example; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.pyfunc import PythonModel

    from core.predictors import load_predictor

    class _Model(ImageClassifier, PythonModel):
        pass

    _, encoded = cv2.imencode(".png", cv2.cvtColor(example_image, cv2.COLOR_RGB2BGR))
    example = pd.DataFrame({"image": [encoded.tobytes()]})
    predictor = load_predictor(predictor_dir)
    proba = predictor.predict_proba([example_image])
    output = pd.DataFrame({"category": [predictor.categories[int(proba[0].argmax())]],
                           "probability": [float(proba[0].max())]})
    torch_req = ["torch==2.13.0"] if predictor.info.get("kind") == "torch" else []
    return mlflow.pyfunc.log_model(
        name="model", python_model=_Model(), artifacts={"predictor": str(predictor_dir)},
        signature=infer_signature(example, output), input_example=example,
        pip_requirements=[f"mlflow=={mlflow.__version__}", "numpy", "pandas", "opencv-python-headless",
                          "scikit-image", "scipy", *torch_req],
    )


def champion_metrics(client: Any, name: str) -> tuple[str | None, dict[str, float] | None]:
    """The champion's version and its evaluation metrics (from its run), if any."""
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 -- MLflow raises a generic exception for a missing alias/model
        return None, None
    return str(version.version), dict(client.get_run(version.run_id).data.metrics)


def register(client: Any, name: str, model_uri: str, run_id: str) -> str:
    """A new version of ``name`` from ``model_uri``, aliased ``challenger``."""
    import mlflow

    version = mlflow.register_model(model_uri, name).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "run_id", run_id)
    return str(version)


def set_champion(client: Any, name: str, version: str) -> None:
    """Alias ``version`` as champion and append it to the champion history."""
    client.set_registered_model_alias(name, CHAMPION, version)
    history = champion_history(client, name)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, str(version)]))


def champion_history(client: Any, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def rollback(client: Any, name: str) -> str:
    """Make the previous champion the champion again; returns its version."""
    history = champion_history(client, name)
    if len(history) < 2:
        raise ValueError(f"{name}: no earlier champion to roll back to (history: {history or 'empty'})")
    previous = history[-2]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    return previous


def record_decision(client: Any, name: str, version: str, decision: Decision) -> None:
    client.set_model_version_tag(name, version, "promotion", "promoted" if decision.promote else "rejected")
    client.set_model_version_tag(name, version, "promotion_reasons", "; ".join(decision.reasons)[:5000])


def evaluation_of(root: Path, params: Any, method: str) -> dict[str, Any]:
    """``<paths.metrics>/evaluate/<method>.json``."""
    return json.loads((root / params.paths.metrics / "evaluate" / f"{method}.json").read_text())


def adapted_on(evaluation: Mapping[str, Any], metric: str) -> bool:
    """Whether the model (its ``training_data`` line) adapted to unlabelled photos of the
    dataset of ``metric`` (``datasets.<name>.…``), e.g. self-training on the ``ikea_val`` images."""
    training = str(evaluation.get("model", {}).get("training_data", ""))
    return "unlabelled" in training and f"({metric.split('.')[1]} images" in training


def best_method(root: Path, params: Any, methods: Sequence[str]) -> str | None:
    """The evaluated method with the highest primary metric (a choice: val or proxy-real,
    never test); None when none of them has an evaluation."""
    from core.tracking import flatten, numeric

    scores = {}
    for m in methods:
        try:
            evaluation = evaluation_of(root, params, m)
        except FileNotFoundError:
            continue
        values = numeric(flatten({"datasets": evaluation["datasets"]}))
        metric = primary_metric(values, tuple(params.promotion.metrics))
        if metric is not None and adapted_on(evaluation, metric):
            log.info("promote: %s is no candidate: it adapted to the unlabelled photos of %s, whose score "
                     "then measures nothing", m, metric.split(".")[1])
            continue
        scores[m] = values[metric] if metric is not None else float("-inf")
    return max(scores, key=lambda m: scores[m], default=None)


def promote_after_run(root: Path, params: Any, method: str) -> Decision | None:
    """In the active pipeline run: log the evaluated model of ``method`` (nested run
    ``promote``), register it as ``challenger`` and promote it when :func:`decide` says so.
    Returns None (and registers nothing) when the model is the one the latest version
    already holds."""
    import mlflow

    from core.tracking import file_md5, flatten, numeric

    p = params.promotion
    model_dir = root / params.paths.models / method
    evaluation = evaluation_of(root, params, method)
    contracts = root / params.paths.metrics / "validate.json"
    contracts_passed = contracts.is_file() and bool(json.loads(contracts.read_text()).get("success"))
    weights = file_md5(model_dir / "weights.npz")
    client = mlflow.tracking.MlflowClient()
    latest = _latest_version(client, p.model_name)
    if latest is not None and latest.tags.get("weights_md5") == weights:
        mlflow.set_tags({"model_version": latest.version, "promotion": "unchanged model, not registered again"})
        return None
    challenger = numeric(flatten({"datasets": evaluation["datasets"]}))
    with mlflow.start_run(run_name="promote", nested=True) as run:
        mlflow.set_tags({"cad2real.kind": "stage", "stage": "promote", "method": method})
        mlflow.log_metrics(challenger)
        info = log_model(model_dir, _example_image(root, params))
        version = register(client, p.model_name, info.model_uri, run.info.run_id)
        client.set_model_version_tag(p.model_name, version, "weights_md5", weights)
        client.set_model_version_tag(p.model_name, version, "method", method)
        champion_version, champion = champion_metrics(client, p.model_name)
        decision = decide(challenger, champion, contracts_passed=contracts_passed, candidates=tuple(p.metrics),
                          min_improvement=p.min_improvement, max_class_drop=p.max_class_drop,
                          min_class_objects=p.min_class_objects)
        record_decision(client, p.model_name, version, decision)
        if decision.promote:
            set_champion(client, p.model_name, version)
        mlflow.log_dict({"version": version, "champion_before": champion_version, "promote": decision.promote,
                         "metric": decision.metric, "challenger": decision.challenger_value,
                         "champion": decision.champion_value, "reasons": list(decision.reasons)},
                        "promotion.json")
    mlflow.set_tags({"model_version": version, "promotion": "promoted" if decision.promote else "rejected",
                     "challenger_method": method})
    return decision


def _latest_version(client: Any, name: str) -> Any:
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception:  # noqa: BLE001 -- no such registered model yet
        return None
    return max(versions, key=lambda v: int(v.version), default=None)


def _example_image(root: Path, params: Any) -> np.ndarray:
    """A proxy-real image as the logged input example (grey when there is none)."""
    from core.io import read_image, read_manifest

    try:
        rel = read_manifest(root / params.paths.proxy_real)["image"].iloc[0]
        return read_image(root / params.paths.proxy_real / rel)
    except (FileNotFoundError, ValueError, IndexError):
        return np.full((64, 64, 3), 128, np.uint8)
