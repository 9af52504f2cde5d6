"""The main job as a real Prefect flow (test harness API) with a real SQLite MLflow store,
running real `dvc repro` per stage in scratch repositories on the small profile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, small_params_raw
from tests.integration.test_dvc_pipeline import SEARCH_STAGES, SEED_004_STAGES, make_repo, sh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory, harness) -> str:
    import os

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cad2real")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_dvc_yaml_lists_stages_in_dag_order():
    from flows.pipeline import stages

    order = stages(ROOT / "dvc.yaml", search=True)
    dot = subprocess.run([str(Path(sys.executable).with_name("dvc")), "dag", "--dot"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    edges = re.findall(r'"([\w@]+)" -> "([\w@]+)"', dot)
    assert edges and all(order.index(a) < order.index(b) for a, b in edges), (order, edges)


def test_flow_runs_every_stage_and_tracks_it(tmp_path_factory, mlflow_uri):
    from flows.pipeline import pipeline, stages

    repo = make_repo(tmp_path_factory.mktemp("flow") / "repo")
    results = pipeline(root=str(repo), retry_delay_seconds=0.1)
    names = stages(repo / "dvc.yaml")
    assert [r["stage"] for r in results] == names and all(r["ran"] for r in results)
    assert {"train@baseline", "train@gmcml", "evaluate@gmcml"} <= set(names)
    assert (repo / "metrics/evaluate/baseline.json").is_file() and (repo / "metrics/evaluate/gmcml.json").is_file()

    client, found = runs(mlflow_uri)
    parent = next(r for r in found if r.data.tags.get("cad2real.kind") == "pipeline")
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["stage"] for r in children) == sorted([*names, "promote"])
    assert parent.info.status == "FINISHED"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", parent.data.tags["git_commit"])
    assert len(parent.data.tags["dvc_lock_md5"]) == 32
    assert parent.data.params["render.views_per_model"] == "4"
    assert "baseline.datasets.proxy_real.accuracy" in parent.data.metrics
    assert "gmcml.datasets.proxy_real.accuracy" in parent.data.metrics
    assert parent.data.tags["training_data"].startswith("synthetic only")
    evaluate_run = next(r for r in children if r.data.tags["stage"] == "evaluate@gmcml")
    assert 0.0 <= evaluate_run.data.metrics["datasets.proxy_real.mean_class_accuracy"] <= 1.0
    artifacts = {a.path for a in client.list_artifacts(evaluate_run.info.run_id)}
    assert {"plots", "gmcml.md", "gmcml.json"} <= artifacts
    train_run = next(r for r in children if r.data.tags["stage"] == "train@gmcml")
    assert "train.r_cls" in train_run.data.metrics and "synthetic_test_accuracy" in train_run.data.metrics
    steps = client.get_metric_history(train_run.info.run_id, "train.loss")
    assert len(steps) == int(train_run.data.metrics["steps"]) and steps[-1].step == len(steps)
    plots = {a.path for a in client.list_artifacts(train_run.info.run_id, "plots")}
    assert {"plots/reconstructions.png", "plots/noise_ratios.png", "plots/pca.png"} <= plots
    adaptation_run = next(r for r in children if r.data.tags["stage"] == "train_adaptation")
    assert len(client.get_metric_history(adaptation_run.info.run_id, "train_adaptation.affine_relu.val_loss")) == 2
    assert "plots/loss.png" in {a.path for a in client.list_artifacts(adaptation_run.info.run_id, "plots")}
    exemplar_run = next(r for r in children if r.data.tags["stage"] == "exemplar")
    assert "exemplar.md" in {a.path for a in client.list_artifacts(exemplar_run.info.run_id)}
    assert "datasets.proxy_detection.main.map" in exemplar_run.data.metrics

    # The evaluated model is registered and, as the first one, becomes champion; the
    # champion answers on raw image bytes.
    import mlflow
    import pandas as pd

    champion = client.get_model_version_by_alias("cad2real-classifier", "champion")
    assert parent.data.tags["promotion"] == "promoted" and parent.data.tags["model_version"] == str(champion.version)
    photo = next((repo / "data/proxy_real").rglob("*.jpg")).read_bytes()
    out = mlflow.pyfunc.load_model("models:/cad2real-classifier@champion").predict(pd.DataFrame({"image": [photo]}))
    assert out["category"][0] in {"chair", "car", "bottle", "bookcase"}

    # `c2r predict` uses the champion by default; `c2r status` shows it.
    import json
    import os

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}
    cli = [sys.executable, "-m", "flows.cli"]
    out = subprocess.run([*cli, "predict", str(next((repo / "data/proxy_real").rglob("*.jpg"))), "--json"],
                         cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    assert json.JSONDecoder().raw_decode(out[out.index("{"):])[0]["model"] == "models:/cad2real-classifier@champion"
    status = subprocess.run([*cli, "status"], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
    assert f"champion    cad2real-classifier v{champion.version}" in status
    refused = subprocess.run([*cli, "rollback"], cwd=repo, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "no earlier champion" in refused.stderr

    # A second run with nothing changed re-runs no stage, registers nothing new and keeps
    # the champion; it is tracked as a new run.
    again = pipeline(root=str(repo), retry_delay_seconds=0.1)
    assert not any(r["ran"] for r in again)
    _, found = runs(mlflow_uri)
    latest = [r for r in found if r.data.tags.get("cad2real.kind") == "pipeline"][-1]
    assert latest.info.run_id != parent.info.run_id
    assert latest.data.tags["dvc_lock_md5"] == parent.data.tags["dvc_lock_md5"]
    assert latest.data.tags["promotion"].startswith("unchanged model")
    assert client.get_model_version_by_alias("cad2real-classifier", "champion").version == champion.version
    assert len(client.search_model_versions("name = 'cad2real-classifier'")) == 1


def test_a_corrupt_manifest_stops_the_flow_before_training(tmp_path_factory, mlflow_uri, built_pipeline):
    """Bad data committed as a stage's output (`dvc commit`): the contracts fail, the flow
    stops at `validate`, training does not run, and the report is an MLflow artifact."""
    import pandas as pd

    from flows.pipeline import StageFailed, pipeline
    from tests.integration.conftest import copy_repo

    repo = copy_repo(built_pipeline, tmp_path_factory.mktemp("corrupt") / "repo")
    model = repo / "data/models/baseline/weights.npz"
    trained_at = model.stat().st_mtime_ns
    manifest = repo / "data/renders/manifest.parquet"
    renders = pd.read_parquet(manifest)
    renders.loc[0, "azimuth"] = 400.0
    renders.to_parquet(manifest, index=False)
    sh(repo, "dvc", "commit", "-f", "render")
    with pytest.raises(StageFailed, match=r"renders: azimuth: 1 of \d+ values outside \[0, 360\)"):
        pipeline(root=str(repo), retry_delay_seconds=0.1)
    assert model.stat().st_mtime_ns == trained_at  # train@baseline never ran
    client, found = runs(mlflow_uri)
    failed = [r for r in found if r.data.tags.get("cad2real.kind") == "pipeline"][-1]
    assert failed.info.status == "FAILED" and failed.data.tags["failed_stage"] == "validate"
    assert "validation.json" in {a.path for a in client.list_artifacts(failed.info.run_id)}


FLAKY = """stages:
  flaky:
    cmd: python flaky.py
    deps: [flaky.py]
    outs: [out.txt]
"""
# Fails on its first attempt only (the attempt counter lives outside DVC's outputs).
FLAKY_PY = """import pathlib, sys
counter = pathlib.Path("attempts.txt")
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
if n == 0:
    sys.exit("transient failure on the first attempt")
pathlib.Path("out.txt").write_text("ok")
"""


def scratch_repo(path: Path, dvc_yaml: str, script: str) -> Path:
    path.mkdir(parents=True)
    (path / "dvc.yaml").write_text(dvc_yaml)
    (path / "flaky.py").write_text(script)
    (path / "params.yaml").write_text(yaml.safe_dump(small_params_raw(), sort_keys=False))
    (path / ".gitignore").write_text("attempts.txt\n")
    for cmd in (("git", "init", "-q"), ("git", "config", "user.email", "t@c2r.local"),
                ("git", "config", "user.name", "t"), ("dvc", "init", "-q"), ("git", "add", "-A"),
                ("git", "commit", "-qm", "scratch")):
        sh(path, *cmd)
    return path


def test_a_stage_failing_once_is_retried(tmp_path, mlflow_uri):
    from flows.pipeline import pipeline

    repo = scratch_repo(tmp_path / "flaky", FLAKY, FLAKY_PY)
    (result,) = pipeline(root=str(repo), retry_delay_seconds=0.1, track=False)
    assert result == {"stage": "flaky", "ran": True, "seconds": result["seconds"]}
    assert (repo / "attempts.txt").read_text() == "2" and (repo / "out.txt").read_text() == "ok"


def test_a_stage_failing_every_time_fails_the_flow_with_its_output(tmp_path, mlflow_uri):
    from flows.pipeline import StageFailed, pipeline

    repo = scratch_repo(tmp_path / "broken", FLAKY, "import sys\nsys.exit('permanently broken input')\n")
    with pytest.raises(StageFailed, match="permanently broken input"):
        pipeline(root=str(repo), retry_delay_seconds=0.1)
    _, found = runs(mlflow_uri)
    assert [r for r in found if r.data.tags.get("cad2real.kind") == "pipeline"][-1].info.status == "FAILED"


def test_checkout_restores_the_exact_data_of_an_earlier_run(tmp_path_factory, mlflow_uri):
    """Run A, then run B with other params; `c2r checkout A` restores A's manifests byte
    for byte (git checkout of A's commit + A's dvc.lock + dvc pull from the remote)."""
    import os

    from flows.pipeline import pipeline

    base = tmp_path_factory.mktemp("checkout")
    repo = make_repo(base / "repo", drop_stages=(*SEED_004_STAGES, *SEARCH_STAGES))  # what is restored is the same for every stage
    sh(repo, "dvc", "remote", "add", "-d", "local", str(base / "remote"))
    sh(repo, "git", "commit", "-qam", "DVC remote")

    def tracked_run() -> str:
        pipeline(root=str(repo), retry_delay_seconds=0.1)
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-qm", "lock")
        _, found = runs(mlflow_uri)
        latest = [r for r in found if r.data.tags.get("cad2real.kind") == "pipeline"][-1]
        assert latest.data.tags["data_pushed"] == "true"
        return latest.info.run_id

    outputs = ("data/catalog/manifest.parquet", "data/renders/manifest.parquet", "data/proxy_real/manifest.parquet")
    run_a = tracked_run()
    before = {rel: (repo / rel).read_bytes() for rel in outputs}
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["render"]["views_per_model"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sh(repo, "git", "commit", "-qam", "fewer views")
    tracked_run()
    assert (repo / outputs[1]).read_bytes() != before[outputs[1]]

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "checkout", run_a], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pulled from the DVC remote" in done.stdout
    assert {rel: (repo / rel).read_bytes() for rel in outputs} == before
    assert "views_per_model: 4" in (repo / "params.yaml").read_text()


def test_serve_registers_a_scheduled_deployment(harness, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.pipeline import deployment

    deployment_id = deployment("0 2 * * *", tmp_path, name="nightly-test").apply()
    with get_client(sync_client=True) as client:
        found = client.read_deployment(deployment_id)
        schedules = client.read_deployment_schedules(deployment_id)
    assert found.name == "nightly-test" and found.parameters == {"root": str(tmp_path.resolve())}
    assert [s.schedule.cron for s in schedules] == ["0 2 * * *"]


TRAIN_DVC = """stages:
  train:
    matrix:
      method: ${train.methods}
    cmd: python -c "import os; open('out_${item.method}.txt', 'w').write(str(os.getpid()))"
    outs:
      - out_${item.method}.txt
"""


def test_training_stages_run_as_flow_runs_of_the_training_deployment(harness, tmp_path):
    """`compute.training_deployment` set: each train@ stage is a flow run of that deployment
    (here served by a Runner in this process, as a GPU worker would), waited for."""
    import asyncio
    import os
    import threading

    from prefect.client.orchestration import get_client
    from prefect.runner import Runner

    from flows.pipeline import pipeline, stages_flow

    repo = scratch_repo(tmp_path / "gpu", TRAIN_DVC, "")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["compute"]["training_deployment"] = "cad2real-stages/train-gpu-test"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sh(repo, "git", "commit", "-qam", "training deployment")
    runner = Runner(name="gpu-worker-test", query_seconds=1)
    runner.add_deployment(stages_flow.to_deployment(name="train-gpu-test"))
    loop = asyncio.new_event_loop()
    worker = threading.Thread(target=loop.run_until_complete, args=(runner.start(),), daemon=True)
    worker.start()
    try:
        (result,) = pipeline(root=str(repo), retry_delay_seconds=0.1, track=False, methods=["baseline"])
    finally:
        asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(timeout=60)
        worker.join(timeout=60)
    assert result["stage"] == "train@baseline" and result["deployment"] == "cad2real-stages/train-gpu-test"
    assert int((repo / "out_baseline.txt").read_text()) != os.getpid()  # ran in the worker's process
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(result["flow_run"])
    assert run.state.is_completed() and run.parameters["stages"] == ["train@baseline"]


def test_generation_flow_searches_beta_then_runs_the_pipeline_with_it(tmp_path_factory, mlflow_uri):
    """Seed 002's flow on the small profile: `dvc repro optimize_generation` (the hybrid
    gradient and the three baselines), every outer step in MLflow, then `dvc exp run` of
    the render/composite stages with the found β."""
    import json

    import pandas as pd

    from flows.generation import generation_search

    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keep = {"catalog", "render", "composite", "proxy_real", "optimize_generation"}
    repo = make_repo(tmp_path_factory.mktemp("generation") / "repo", drop_stages=tuple(set(spec) - keep))
    out = generation_search(root=str(repo), targets=["composite"], experiment_name="found-beta",
                            retry_delay_seconds=0.1)
    beta = out["beta"]
    assert {"catalog.procedural.grammar.chair.dim_log_std", "catalog.procedural.grammar.bookcase.option_logit",
            "render.distance.lo", "composite.object_blur_sigma.hi"} <= set(beta)
    assert beta == yaml.safe_load((repo / "data/generation/beta.yaml").read_text())

    values = json.loads((repo / "metrics/optimize_generation.json").read_text())
    steps = small_params_raw()["generation_search"]["steps"]
    assert {"hybrid", "random_search", "evolution", "fixed_best", "fixed_median", "fixed_worst",
            "hybrid_from_best"} <= set(values["runs"])
    hybrid = values["runs"]["hybrid"]
    # Every searching method is charged the same samples: (2m + 1) k batch per outer step.
    assert hybrid["samples"] == values["runs"]["random_search"]["samples"] == values["runs"]["evolution"]["samples"] \
        == steps * (2 * 2 + 1) * 2 * 2
    assert hybrid["cpu_s"] > 0 and hybrid["wall_s"] > 0 and values["hybrid_seconds_per_outer_step"]["max"] > 0
    assert set(values["final"]) == {"default", "hybrid", "random_search", "evolution", "fixed_best"}
    assert values["runs"]["target_less_compute"]["met"] in (True, False)
    assert values["validation"]["domain"] in ("real", "proxy-real (synthetic)")
    report = (repo / "reports/optimize_generation.md").read_text()
    assert "seed 002 Fig. 4" in report and "Table 1" in report and values["validation"]["name"] in report
    history = pd.read_csv(repo / "plots/optimize_generation/history.csv")
    assert len(history) == steps + 1 and history["hybrid.samples"].iloc[-1] == hybrid["samples"]
    assert (repo / "plots/optimize_generation/val_loss_vs_cpu.png").is_file()

    # MLflow: every outer step of every method (L, β, CPU and wall time), the report and β.
    client, found = runs(mlflow_uri)
    parent = [r for r in found if r.data.tags.get("cad2real.kind") == "pipeline"][-1]
    assert parent.info.run_name == "generation_search" and parent.info.status == "FINISHED"
    assert "beta.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    stage_run = next(r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id)
    for metric in ("optimize_generation.hybrid.val_loss", "optimize_generation.evolution.cpu_s",
                   "optimize_generation.random_search.wall_s",
                   "optimize_generation.hybrid.beta.render.distance.lo"):
        assert len(client.get_metric_history(stage_run.info.run_id, metric)) == steps + 1, metric
    assert "optimize_generation.md" in {a.path for a in client.list_artifacts(stage_run.info.run_id)}

    # The experiment: params carry β, the catalog's models were built with its grammar.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    grammar = params["catalog"]["procedural"]["grammar"]["chair"]
    assert grammar["dim_log_std"] == pytest.approx(beta["catalog.procedural.grammar.chair.dim_log_std"])
    catalog = pd.read_parquet(repo / "data/catalog/manifest.parquet")
    chairs = catalog.loc[catalog["category"] == "chair", "original_path"]
    assert chairs.str.contains("dim_log_std=").all()
    assert (repo / "data/composites/manifest.parquet").is_file()
    assert "found-beta" in sh(repo, "dvc", "exp", "list")
