"""The main job: a Prefect flow whose tasks are the DVC stages, tracked in MLflow.

Each task runs ``dvc repro --single-item <stage>`` in the order of ``dvc.yaml`` (which
lists the stages in DAG order; a test checks it against ``dvc dag``), with retries and
exponential backoff; task names are stage names. DVC stays the only cache and the only
definition of a stage: a second run with nothing changed re-runs nothing. One MLflow
parent run per pipeline run, a nested run per stage (core/tracking.py). Prefect runs on
its ephemeral API with ``PREFECT_HOME`` inside the project unless configured otherwise.
"""

from __future__ import annotations

from flows import _env  # noqa: F401  (settings before prefect and mlflow are imported)

import codecs  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402

from core import tracking  # noqa: E402
from core.io import read_manifest, setup_logging  # noqa: E402
from core.params import load_params  # noqa: E402

log = logging.getLogger("cad2real.pipeline")
RETRIES = 2
# Stages whose failure is deterministic (a verdict on the data): retrying only wastes time.
NO_RETRY = frozenset({"validate"})
# Stages the main job leaves out: the generation search has its own flow (flows/generation.py).
SEARCH_STAGES = frozenset({"optimize_generation"})


class StageFailed(RuntimeError):
    """``dvc repro`` of a stage exited non-zero; the message holds the end of its output."""


def dvc_executable() -> str:
    """The dvc of this interpreter's environment (the project venv), else the PATH's."""
    local = Path(sys.executable).with_name("dvc")
    return str(local) if local.exists() else (shutil.which("dvc") or "dvc")


def venv_env() -> dict[str, str]:
    """The environment for DVC: dvc.yaml's commands say `python`, which must be this
    environment's interpreter."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def stages(dvc_yaml: Path = Path("dvc.yaml"), methods: list[str] | None = None,
           params_yaml: Path | None = None, search: bool = False) -> list[str]:
    """The stage names of ``dvc.yaml`` in file order (= DAG order), matrix stages expanded
    as DVC names them (``train@gmcml``) over ``train.methods`` of ``params_yaml``
    (default: beside ``dvc.yaml``); with ``methods``, only those methods' items. The
    generation search (:data:`SEARCH_STAGES`) only with ``search``."""
    params = load_params(params_yaml or dvc_yaml.with_name("params.yaml"))
    names: list[str] = []
    for name, spec in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
        if name in SEARCH_STAGES and not search:
            continue
        if "matrix" not in spec:
            names.append(name)
            continue
        if spec["matrix"] == {"method": "${viewpoint.methods}"}:  # every viewpoint method, always
            names += [f"{name}@{m}" for m in params.viewpoint.methods]
            continue
        if spec["matrix"] != {"method": "${train.methods}"}:
            raise ValueError(f"{dvc_yaml}: stage {name}: only `matrix: {{method: ${{train.methods}}}}` or "
                             "`${viewpoint.methods}` is supported")
        names += [f"{name}@{m}" for m in params.train.methods if methods is None or m in methods]
    return names


def backoff(base_seconds: float, retries: int = RETRIES) -> list[float]:
    """Retry delays doubling from ``base_seconds``: 10, 20, 40, ..."""
    return [base_seconds * 2**i for i in range(retries)]


def run_streaming(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd`` showing its output live (log lines, progress bars) on stderr; return
    its exit code and the whole output (for the "ran or up to date" check and errors)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parts: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(8192):
            text = decoder.decode(chunk)
            sys.stderr.write(text)
            sys.stderr.flush()
            parts.append(text)
        returncode = proc.wait()
    return returncode, "".join(parts) + decoder.decode(b"", final=True)


@task(retries=RETRIES, retry_delay_seconds=backoff(10.0))
def run_stage(stage: str, root: str, single_item: bool = True) -> dict[str, Any]:
    """``dvc repro --single-item <stage>`` in ``root`` (without ``single_item``: with the
    stages it depends on): whether it ran, and how long it took."""
    logger = get_run_logger()
    cmd = [dvc_executable(), "repro", *(["--single-item"] if single_item else []), stage]
    env = venv_env()
    start = time.perf_counter()
    returncode, output = run_streaming(cmd, root, env)
    seconds = time.perf_counter() - start
    if returncode != 0:
        tail = "\n".join(output.splitlines()[-25:])
        logger.error("stage %s failed after %.1f s (dvc repro exited %d)", stage, seconds, returncode)
        raise StageFailed(f"stage {stage}: `{' '.join(cmd)}` exited {returncode}\n{tail}")
    ran = f"Running stage '{stage}'" in output
    logger.info("stage %s: %s in %.1f s", stage, "ran" if ran else "up to date, nothing re-run", seconds)
    return {"stage": stage, "ran": ran, "seconds": round(seconds, 2)}


@flow(name="cad2real-pipeline")
def pipeline(root: str = ".", retry_delay_seconds: float = 10.0, track: bool = True,
             methods: list[str] | None = None) -> list[dict[str, Any]]:
    """Every DVC stage of ``root`` in DAG order as a task, the training and evaluation
    stages for ``methods`` (default ``train.default``; ``["all"]``: every one of
    ``train.methods``); MLflow parent + nested runs; promotion of the best method."""
    base = Path(root).resolve()
    params = load_params(base / "params.yaml")  # a wrong params.yaml fails here, before DVC
    paths = params.paths.model_dump()
    chosen = list(params.train.methods) if methods == ["all"] else list(methods or params.train.default)
    unknown = [m for m in chosen if m not in params.train.methods]
    if unknown:
        raise ValueError(f"methods {unknown} are not in train.methods of {base / 'params.yaml'}")
    names = stages(base / "dvc.yaml", chosen)
    results: list[dict[str, Any]] = []
    tracked = tracking.pipeline_run(base, params.model_dump(mode="json"), run_name="pipeline") if track \
        else contextlib.nullcontext()
    with tracked as parent:
        for name in names:
            remote = params.compute.training_deployment if name.startswith("train@") else None
            stage_task = (remote_stage if remote else run_stage).with_options(
                name=name, retries=0 if name in NO_RETRY else RETRIES, retry_delay_seconds=backoff(retry_delay_seconds))
            try:
                result = stage_task(name, str(base), remote) if remote else stage_task(name, str(base))
            except StageFailed as exc:
                if parent is not None:
                    tracking.log_failure(base, paths, name, exc)
                raise
            results.append(result)
            if parent is not None:
                tracking.log_stage(base, paths, name, result, parent.info.run_id)
        if parent is not None and params.promotion.enabled and any(n.startswith("evaluate@") for n in names):
            promote(base, params, chosen)
        pushed = push.with_options(retry_delay_seconds=backoff(retry_delay_seconds))(str(base))
        if parent is not None:
            tracking.record_data_version(base, pushed)
    return results


@task
def remote_stage(stage: str, root: str, deployment: str) -> dict[str, Any]:
    """``stage`` as a flow run of ``deployment`` (a :func:`stages_flow` deployment, e.g. on
    a GPU work pool), waited for; its worker runs ``dvc repro`` in the same checkout."""
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    start = time.perf_counter()
    logger.info("stage %s: submitted to deployment %s", stage, deployment)
    run = run_deployment(name=deployment, parameters={"root": root, "stages": [stage]}, timeout=None,
                         poll_interval=2)
    seconds = time.perf_counter() - start
    if run.state is None or not run.state.is_completed():
        state = run.state.name if run.state is not None else "unknown"
        raise StageFailed(f"stage {stage}: flow run {run.name} of deployment {deployment} ended {state}")
    logger.info("stage %s: flow run %s of %s completed in %.1f s", stage, run.name, deployment, seconds)
    return {"stage": stage, "ran": True, "seconds": round(seconds, 2), "deployment": deployment,
            "flow_run": str(run.id)}


@flow(name="cad2real-stages")
def stages_flow(root: str = ".", stages: list[str] | None = None,
                retry_delay_seconds: float = 10.0) -> list[dict[str, Any]]:
    """The named DVC stages of ``root``, each as a retried task: the share of a pipeline
    run that a worker elsewhere runs (``compute.training_deployment``; prefect.yaml's
    ``train-gpu``). No tracking here: the pipeline run that asked tracks them."""
    base = str(Path(root).resolve())
    return [run_stage.with_options(name=name, retry_delay_seconds=backoff(retry_delay_seconds))(name, base)
            for name in stages or []]


@task(name="push", retries=RETRIES)
def push(root: str) -> bool:
    """``dvc push`` to the default DVC remote, so this run's data can be restored later
    (``c2r checkout RUN_ID``); False when no remote is configured."""
    logger = get_run_logger()
    env = venv_env()
    remote = subprocess.run([dvc_executable(), "remote", "default"], cwd=root, env=env, capture_output=True,
                            text=True)
    if remote.returncode != 0 or not remote.stdout.strip():
        logger.warning("push: no default DVC remote configured in %s; data not pushed", root)
        return False
    returncode, output = run_streaming([dvc_executable(), "push"], root, env)
    if returncode != 0:
        raise StageFailed(f"dvc push to {remote.stdout.strip()} exited {returncode}\n{output[-2000:]}")
    logger.info("push: data pushed to the DVC remote %r", remote.stdout.strip())
    return True


@task(name="promote")
def promote(base: Path, params: Any, methods: list[str]) -> None:
    """Register the best evaluated method of this run (by the primary metric: val or
    proxy-real, never test) as challenger; champion only when it beats the champion."""
    from core import registry

    logger = get_run_logger()
    method = registry.best_method(base, params, methods)
    if method is None:
        logger.warning("promote: no evaluation of %s found; nothing registered", methods)
        return
    logger.info("promote: challenger is %s, the best of %s on %s", method, methods, list(params.promotion.metrics))
    decision = registry.promote_after_run(base, params, method)
    if decision is None:
        logger.info("promote: the model has not changed since the latest registered version; nothing registered")
    else:
        logger.info("promote: %s — %s", "PROMOTED to champion" if decision.promote else "kept as challenger",
                    "; ".join(decision.reasons))


DEPLOYMENT = "scheduled"


def deployment(cron: str, root: Path, name: str = DEPLOYMENT) -> Any:
    """The pipeline as a Prefect deployment with a cron schedule (served in-process by
    ``c2r serve``; ``prefect.yaml`` declares the work-pool variants)."""
    return pipeline.to_deployment(name=name, cron=cron, parameters={"root": str(root.resolve())},
                                  description="cad2real: dvc repro of every stage, MLflow tracking, promotion",
                                  tags=["cad2real"])


def summary(params_path: Path = Path("params.yaml"), methods: list[str] | None = None) -> list[str]:
    """One line per output: what it is, how many rows, where it is."""
    params = load_params(params_path)
    base = params_path.parent
    lines = []
    for name, path in (
        ("catalog", params.paths.catalog), ("renders", params.paths.renders),
        ("composites", params.paths.composites), ("adaptation pairs", params.paths.adaptation_pairs),
        ("proxy-real set (SYNTHETIC)", params.paths.proxy_real),
        ("proxy detection (SYNTHETIC)", params.paths.proxy_detection),
    ):
        try:
            n = len(read_manifest(base / path))
            lines.append(f"  {name:<28} {n:>7} rows  {(base / path).resolve()}")
        except FileNotFoundError:
            lines.append(f"  {name:<28} {'-':>7}       (not produced yet) {path}")
    lines.append(f"  {'metrics':<28} {'':>7}       {(base / params.paths.metrics).resolve()} (dvc metrics show)")
    for method in methods or params.train.default:
        lines.append(f"  {'model ' + method:<28} {'':>7}       {(base / params.paths.models / method).resolve()}")
        report = base / params.paths.reports / "evaluate" / f"{method}.md"
        lines.append(f"  {'evaluation ' + method:<28} {'':>7}       {report.resolve()}")
        lines += results(base / params.paths.metrics / "evaluate" / f"{method}.json")
    lines += seed_004_results(base / params.paths.metrics, base / params.paths.reports)
    return lines


def seed_004_results(metrics_dir: Path, reports_dir: Path) -> list[str]:
    """Retrieval's main configuration and exemplar detection's mAP, one line per dataset."""
    lines = []
    retrieval, exemplar = metrics_dir / "retrieval.json", metrics_dir / "exemplar.json"
    if retrieval.is_file():
        lines.append(f"  {'retrieval (rendered views)':<28} {'':>7}       {(reports_dir / 'retrieval.md').resolve()}")
        for name, r in json.loads(retrieval.read_text())["datasets"].items():
            m = r["main"]
            lines.append(f"      {name:<24} {r['domain']:<24} {r['objects']:>5} objects  accuracy {m['accuracy']:.3f}  "
                         f"per-class mean {m['mean_class_accuracy']:.3f}  ({m['layer']}, {m['similarity']})")
    if exemplar.is_file():
        lines.append(f"  {'exemplar detection':<28} {'':>7}       {(reports_dir / 'exemplar.md').resolve()}")
        for name, r in json.loads(exemplar.read_text())["datasets"].items():
            t = r["table_4_2"]
            lines.append(f"      {name:<24} {r['domain']:<24} {r['objects']:>5} objects  "
                         f"mAP {t['adapted']['calibrated']:.3f} adapted+calibrated, "
                         f"{t['white']['calibrated']:.3f} without adaptation")
    viewpoint = metrics_dir / "evaluate_viewpoint.json"
    if viewpoint.is_file():
        v = json.loads(viewpoint.read_text())
        lines.append(f"  {'viewpoint estimation':<28} {'':>7}       {(reports_dir / 'evaluate_viewpoint.md').resolve()}")
        for name, res in v["known_boxes"].items():
            if res:
                best = max(res, key=lambda m: res[m]["acc_pi_6"])
                lines.append(f"      {name:<24} {v['domains'][name]:<24} {res[best]['objects']:>5} objects  best {best}: "
                             f"Acc@pi/6 {res[best]['acc_pi_6']:.3f}, median {res[best]['median_error_deg']:.1f} deg")
        for name, res in v["detection"].items():
            if res:
                best = max(res, key=lambda m: res[m].get("mavp_24") or 0.0)
                lines.append(f"      {name:<24} {v['domains'][name]:<24} detection  best {best}: mAP "
                             f"{res[best]['map']}, mAVP24 {res[best].get('mavp_24')}")
    return lines


def results(path: Path) -> list[str]:
    """The evaluation's headline figures, one line per dataset, with the domain label."""
    if not path.is_file():
        return []
    values = json.loads(path.read_text())
    lines = [f"    {values['model']['name']} ({values['model'].get('method')}), trained on "
             f"{values['model']['training_data']}:"]
    for name, r in values["datasets"].items():
        lines.append(f"      {name:<24} {r['domain']:<24} {r['objects']:>5} objects  accuracy {r['accuracy']:.3f}  "
                     f"per-class mean {r['mean_class_accuracy']:.3f}")
    lines += [f"      {why}" for why in values["skipped"].values()]
    return lines


def main(argv: list[str] | None = None) -> None:
    """``python -m flows.pipeline [--all | --methods a,b]``: the flow on this project."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.pipeline")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="every method of train.methods (the comparison)")
    group.add_argument("--methods", help="comma-separated methods (default: train.default)")
    args = parser.parse_args(argv)
    methods = ["all"] if args.all else (args.methods.split(",") if args.methods else None)
    setup_logging()
    start = time.perf_counter()
    params = load_params()  # fail before Prefect with the schema's message when params.yaml is wrong
    try:
        results = pipeline(root=".", methods=methods)
    except StageFailed as exc:
        log.error("pipeline failed: %s", str(exc).splitlines()[0])
        sys.exit(1)
    ran = [r["stage"] for r in results if r["ran"]]
    print(f"cad2real pipeline done in {time.perf_counter() - start:.1f} s; stages run: "
          f"{', '.join(ran) if ran else 'none (all up to date)'}; MLflow: {tracking.tracking_uri(Path('.'))}")
    print("\n".join(summary(methods=list(params.train.methods) if args.all else methods)))


if __name__ == "__main__":
    main()
