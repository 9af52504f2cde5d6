"""Promotion rules (pure) and the real MLflow registry on a SQLite store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import registry
from core.baseline import HogSoftmax
from core.registry import decide
from tests.core.test_predictors import stripes

METRICS = ("datasets.ikea_val.mean_class_accuracy", "datasets.proxy_real.mean_class_accuracy")


def evaluation(mean: float, chair: float = 0.5, sofa: float = 0.5, dataset: str = "ikea_val") -> dict[str, float]:
    p = f"datasets.{dataset}"
    return {f"{p}.mean_class_accuracy": mean, f"{p}.per_class_accuracy.chair": chair,
            f"{p}.per_class_accuracy.sofa": sofa}


def rule(challenger, champion, contracts=True):
    return decide(challenger, champion, contracts_passed=contracts, candidates=METRICS, min_improvement=0.01,
                  max_class_drop=0.1)


def test_first_model_becomes_champion_when_contracts_pass():
    assert rule(evaluation(0.3), None).promote
    refused = rule(evaluation(0.3), None, contracts=False)
    assert not refused.promote and refused.reasons == ("data contracts failed",)


def test_better_is_promoted_worse_or_equal_is_not():
    better = rule(evaluation(0.40, 0.45, 0.35), evaluation(0.30, 0.40, 0.20))
    assert better.promote and better.challenger_value == 0.40 and better.champion_value == 0.30
    worse = rule(evaluation(0.29), evaluation(0.30))
    assert not worse.promote and "does not beat the champion's 0.3000" in worse.reasons[0]
    within_margin = rule(evaluation(0.305), evaluation(0.30))  # +0.005 < the 0.01 margin
    assert not within_margin.promote


def test_a_class_dropping_too_far_blocks_promotion():
    # Mean up by 0.05, but sofa falls from 0.6 to 0.45 (-0.15 > 0.1).
    decision = rule(evaluation(0.35, chair=0.9, sofa=0.45), evaluation(0.30, chair=0.5, sofa=0.6))
    assert not decision.promote and any("class sofa drops by 0.1500" in r for r in decision.reasons)


def test_classes_with_few_objects_are_not_judged_by_the_drop_rule():
    # bed: 5 photos, one fewer right is -0.2; chair: 40 photos. Mean up by 0.06.
    champion = evaluation(0.40, chair=0.5) | {"datasets.ikea_val.per_class_accuracy.bed": 0.6}
    counts = {"datasets.ikea_val.per_class_objects.bed": 5, "datasets.ikea_val.per_class_objects.chair": 40,
              "datasets.ikea_val.per_class_objects.sofa": 30}
    challenger = evaluation(0.46, chair=0.55) | {"datasets.ikea_val.per_class_accuracy.bed": 0.4} | counts
    strict = rule(challenger, champion)
    assert not strict.promote and any("class bed drops by 0.2000" in r for r in strict.reasons)
    lenient = decide(challenger, champion, contracts_passed=True, candidates=METRICS, min_improvement=0.01,
                     max_class_drop=0.1, min_class_objects=10)
    assert lenient.promote and "classes under 10 objects not judged: bed" in lenient.reasons[0]
    # A large class still blocks.
    worse_chair = challenger | {"datasets.ikea_val.per_class_accuracy.chair": 0.3}
    assert not decide(worse_chair, champion, contracts_passed=True, candidates=METRICS, min_improvement=0.01,
                      max_class_drop=0.1, min_class_objects=10).promote


def test_contract_failure_blocks_even_a_better_model():
    decision = rule(evaluation(0.9), evaluation(0.3), contracts=False)
    assert not decision.promote and "data contracts failed" in decision.reasons


def test_falls_back_to_proxy_real_without_real_photos():
    challenger = evaluation(0.5, dataset="proxy_real")
    decision = rule(challenger, evaluation(0.3, dataset="proxy_real"))
    assert decision.promote and decision.metric == "datasets.proxy_real.mean_class_accuracy"
    assert not rule({}, None).promote


def test_registry_champion_predicts_on_raw_image_bytes_and_rolls_back(tmp_path, monkeypatch):
    import cv2
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    rng = np.random.default_rng(0)
    images = [stripes(v, rng) for v in [True, False] * 10]
    model_dir = tmp_path / "model"
    HogSoftmax.fit(images, ["vertical", "horizontal"] * 10, ["horizontal", "vertical"], size=32, l2=0.01,
                   max_iter=50, info={"training_data": "synthetic only"}).save(model_dir)
    client = MlflowClient()
    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment) as run:
            info = registry.log_model(model_dir, images[0])
            versions.append(registry.register(client, "m", info.model_uri, run.info.run_id))
    registry.set_champion(client, "m", versions[0])
    registry.set_champion(client, "m", versions[1])
    assert str(client.get_model_version_by_alias("m", "champion").version) == versions[1]

    loaded = mlflow.pyfunc.load_model("models:/m@champion")
    ok, png = cv2.imencode(".png", cv2.cvtColor(stripes(True, rng), cv2.COLOR_RGB2BGR))
    out = loaded.predict(pd.DataFrame({"image": [png.tobytes()]}))
    assert list(out.columns) == ["category", "probability"] and out["category"][0] == "vertical"
    assert loaded.metadata.get_input_schema() is not None and loaded.metadata.get_output_schema() is not None

    assert registry.rollback(client, "m") == versions[0]
    assert str(client.get_model_version_by_alias("m", "champion").version) == versions[0]
    with pytest.raises(ValueError, match="no earlier champion"):
        registry.rollback(client, "m")


def test_promotion_after_runs_keeps_the_better_model(tmp_path, monkeypatch):
    """promote_after_run on a real store: first model champion, a worse one stays
    challenger, a better one takes over, an unchanged one is not registered again."""
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    from core.params import parse_params
    from core.tracking import pipeline_run
    from tests.conftest import small_params_raw

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = parse_params(small_params_raw(tmp_path), "test")
    metrics = tmp_path / params.paths.metrics
    metrics.mkdir(parents=True, exist_ok=True)
    (metrics / "validate.json").write_text(json.dumps({"success": True}))
    rng = np.random.default_rng(1)
    images = [stripes(v, rng) for v in [True, False] * 10]

    def run(l2: float, ikea_val: float) -> registry.Decision | None:
        HogSoftmax.fit(images, ["v", "h"] * 10, ["h", "v"], size=32, l2=l2, max_iter=30).save(
            tmp_path / params.paths.models / "baseline")
        (metrics / "evaluate").mkdir(exist_ok=True)
        (metrics / "evaluate" / "baseline.json").write_text(json.dumps({"datasets": {"ikea_val": {
            "mean_class_accuracy": ikea_val, "per_class_accuracy": {"h": ikea_val, "v": ikea_val}}}}))
        with pipeline_run(tmp_path, {"seed": 0}):
            return registry.promote_after_run(tmp_path, params, "baseline")

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    name = params.promotion.model_name
    assert run(0.1, 0.40).promote
    worse = run(0.2, 0.30)
    assert not worse.promote and "does not beat the champion's 0.4000" in worse.reasons[0]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    assert client.get_model_version(name, "2").tags["promotion"] == "rejected"
    assert run(0.3, 0.50).promote
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"
    assert run(0.3, 0.50) is None  # same weights: nothing registered
    assert len(client.search_model_versions(f"name = '{name}'")) == 3
    assert registry.rollback(client, name) == "1"
    assert mlflow.pyfunc.load_model(f"models:/{name}@champion") is not None


def test_a_model_adapted_on_the_promotion_photos_is_no_candidate(tmp_path):
    import json

    from core.params import Params

    params = Params()
    folder = tmp_path / params.paths.metrics / "evaluate"
    folder.mkdir(parents=True)
    for name, acc, data in (("plain", 0.5, "synthetic only (composites of CAD renders)"),
                            ("adapted", 0.9, "synthetic labels + 191 unlabelled real photos (ikea_val images, "
                                             "labels unread)")):
        (folder / f"{name}.json").write_text(json.dumps({
            "model": {"training_data": data}, "datasets": {"ikea_val": {"mean_class_accuracy": acc}}}))
    assert registry.adapted_on(json.loads((folder / "adapted.json").read_text()), "datasets.ikea_val.mean_class_accuracy")
    assert registry.best_method(tmp_path, params, ["plain", "adapted"]) == "plain"
