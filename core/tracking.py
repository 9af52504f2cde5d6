"""MLflow tracking of pipeline runs: one parent run per pipeline run, a nested run per stage.

The store is a SQLite file inside the project (``mlruns/mlflow.db``, artifacts under
``mlruns/artifacts``) unless ``MLFLOW_TRACKING_URI`` names another (a server). Parent runs
carry the resolved params, the git commit, the ``dvc.lock`` hash (the data version) and
the headline evaluation metrics; each stage's run carries its ``metrics/<stage>.json``
(numbers flattened to dotted keys), whether it ran or was up to date, its duration, and
its artifacts (evaluation plots and report).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

EXPERIMENT = "cad2real"
STORE_DIR = "mlruns"
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / STORE_DIR / 'mlflow.db').resolve()}"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys (``datasets.ikea_test.accuracy``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a flattened mapping (booleans and strings left out)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")}


def param_strings(params: Mapping[str, Any]) -> dict[str, str]:
    """Resolved params as MLflow params: dotted keys, lists/None as JSON, values capped."""
    out = {}
    for key, value in flatten(params).items():
        text = value if isinstance(value, str) else json.dumps(value)
        out[key] = text[:MAX_PARAM_CHARS]
    return out


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def git_commit(root: Path) -> str:
    """The commit checked out in ``root``, with ``-dirty`` when tracked files changed."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _experiment_id(mlflow: Any, root: Path, name: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (root / STORE_DIR / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=artifacts.as_uri())


@contextlib.contextmanager
def pipeline_run(root: Path, params: Mapping[str, Any], *, experiment: str = EXPERIMENT,
                 run_name: str | None = None) -> Iterator[Any]:
    """The parent MLflow run of one pipeline run (FAILED when the body raises)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
    experiment_id = _experiment_id(mlflow, root, experiment)
    mlflow.set_experiment(experiment_id=experiment_id)  # nested stage runs go to the same experiment
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"cad2real.kind": "pipeline", "git_commit": git_commit(root)})
        items = sorted(param_strings(params).items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[start : start + 100]))
        yield run
        lock = file_md5(root / "dvc.lock")
        mlflow.set_tags({"dvc_lock_md5": lock, "data_version": lock[:12]})


def record_data_version(root: Path, pushed: bool) -> None:
    """On the active pipeline run: the ``dvc.lock`` that describes its data (an artifact,
    so ``c2r checkout RUN_ID`` can restore exactly that data) and whether it was pushed."""
    import mlflow

    if (root / "dvc.lock").is_file():
        mlflow.log_artifact(str(root / "dvc.lock"))
    mlflow.set_tag("data_pushed", str(pushed).lower())


def log_stage(root: Path, params_paths: Mapping[str, str], stage: str, result: Mapping[str, Any],
              parent_id: str) -> str:
    """A nested run for one stage under the parent run ``parent_id``; returns its run id."""
    import mlflow

    base, _, item = stage.partition("@")
    if stage == "train_viewpoint_detector":  # the detector is the matrix's extra item
        base, item = "train_viewpoint", "detector"
    metrics_file = root / params_paths["metrics"] / (f"{base}/{item}.json" if item else f"{stage}.json")
    with mlflow.start_run(run_name=stage, nested=True) as run:
        mlflow.set_tags({"cad2real.kind": "stage", "stage": stage,
                         "status": "ran" if result["ran"] else "up to date"})
        mlflow.log_metric("stage_seconds", float(result["seconds"]))
        if metrics_file.is_file():
            values = flatten(json.loads(metrics_file.read_text()))
            mlflow.log_metrics(numeric(values))
            mlflow.log_artifact(str(metrics_file))
            if base == "evaluate":
                _log_evaluation(mlflow, root, params_paths, item, values, parent_id)
        if base in ("train", "train_viewpoint"):
            _log_training(mlflow, root / params_paths["plots"] / base / item,
                          prefix="train." if base == "train" else "train_viewpoint.")
        elif (root / params_paths["plots"] / stage).is_dir():  # train_adaptation, retrieval, exemplar
            _log_training(mlflow, root / params_paths["plots"] / stage, prefix=f"{stage}.")
        stage_report = root / params_paths["reports"] / f"{stage}.md"
        if not item and stage_report.is_file():
            mlflow.log_artifact(str(stage_report))
        report = validation_report(root, params_paths)
        if stage == "validate" and report.is_file():
            mlflow.log_artifact(str(report))
        return run.info.run_id


def validation_report(root: Path, params_paths: Mapping[str, str]) -> Path:
    return root / params_paths["reports"] / "validation.json"


def log_failure(root: Path, params_paths: Mapping[str, str], stage: str, error: BaseException) -> None:
    """On the active parent run: which stage failed and why; the contracts report when
    validation failed (the run itself ends FAILED)."""
    import mlflow

    mlflow.set_tags({"failed_stage": stage, "failure": str(error).splitlines()[0][:500]})
    report = validation_report(root, params_paths)
    if stage == "validate" and report.is_file():
        mlflow.log_artifact(str(report))


def _log_training(mlflow: Any, plots: Path, prefix: str = "train.") -> None:
    """The training history (``history.csv``, when there is one) as step-wise metrics
    named ``<prefix><column>`` (losses, noise ratios, lr) and the stage's plots
    (reconstruction grid, noise ratios, PCA of descriptors, ...) as artifacts."""
    import pandas as pd

    history = plots / "history.csv"
    if history.is_file():
        from mlflow.entities import Metric

        frame = pd.read_csv(history)
        stamp = int(time.time() * 1000)
        batch = [Metric(f"{prefix}{col}", float(v), stamp, int(s))
                 for col in frame.columns if col not in ("step", "epoch")
                 for s, v in zip(frame["step"], frame[col], strict=True) if v == v]
        client = mlflow.tracking.MlflowClient()
        run_id = mlflow.active_run().info.run_id
        for start in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(run_id, metrics=batch[start : start + 1000])
    if plots.is_dir():
        mlflow.log_artifacts(str(plots), artifact_path="plots")


def _log_evaluation(mlflow: Any, root: Path, params_paths: Mapping[str, str], method: str,
                    values: Mapping[str, Any], parent_id: str) -> None:
    """Evaluation artifacts, and its headline metrics (prefixed by the method) on the
    parent run as well."""
    plots = root / params_paths["plots"] / "evaluate" / method
    if plots.is_dir():
        mlflow.log_artifacts(str(plots), artifact_path="plots")
    report = root / params_paths["reports"] / "evaluate" / f"{method}.md"
    if report.is_file():
        mlflow.log_artifact(str(report))
    mlflow.set_tag("training_data", str(values.get("model.training_data", "unknown")))
    headline = {k: v for k, v in numeric(values).items()
                if k.endswith((".accuracy", ".mean_class_accuracy")) and k.startswith("datasets.")}
    client = mlflow.tracking.MlflowClient()
    for key, value in headline.items():
        client.log_metric(parent_id, f"{method}.{key}", value)
    client.set_tag(parent_id, "training_data", str(values.get("model.training_data", "unknown")))
