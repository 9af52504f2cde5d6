"""The generation search as a Prefect flow: search β, then run the pipeline with it.

1. ``dvc repro optimize_generation`` (the hybrid gradient and its baselines, seed 002;
   the catalog and proxy-real stages first when they are not built),
   tracked in MLflow: every outer step of every method (β, L, CPU and wall time) as step
   metrics of the stage's run, the report, the plots and ``beta.yaml`` as artifacts.
2. ``dvc exp run -S key=value ...`` with the found β (``${paths.generation}/beta.yaml``)
   up to ``targets`` (default: the evaluation of ``train.default``): the catalog, renders
   and composites are regenerated with β and the models retrained on them, as a DVC
   experiment next to the baseline (``dvc exp show``, ``dvc metrics diff``). The
   workspace then holds the experiment; ``dvc exp apply``/``git checkout`` choose.

``python -m flows.generation [--search-only] [--targets a,b]``.
"""

from __future__ import annotations

from flows import _env  # noqa: F401  (settings before prefect and mlflow are imported)

import contextlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402

from core import tracking  # noqa: E402
from core.io import setup_logging  # noqa: E402
from core.params import load_params  # noqa: E402
from flows.pipeline import StageFailed, dvc_executable, run_stage, run_streaming, venv_env  # noqa: E402

log = logging.getLogger("cad2real.generation")
STAGE = "optimize_generation"


def read_beta(path: Path) -> dict[str, Any]:
    """The dotted params keys of a ``beta.yaml``; a clear error naming the file otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no β file (run `dvc repro {STAGE}` first)")
    beta = yaml.safe_load(path.read_text())
    if not isinstance(beta, dict) or not beta or not all(isinstance(k, str) and "." in k for k in beta):
        raise ValueError(f"{path}: expected a mapping of dotted params keys to values (as `dvc exp run -S`)")
    return beta


def exp_args(beta: dict[str, Any]) -> list[str]:
    """``-S ++key=value`` for each component: ``++`` adds a key params.yaml does not have
    yet (a class's grammar entry) and overrides one it has."""
    return [arg for key, value in beta.items() for arg in ("-S", f"++{key}={value}")]


@task(name="experiment")
def run_experiment(root: str, beta: dict[str, Any], targets: list[str], name: str | None) -> dict[str, Any]:
    """``dvc exp run`` of ``targets`` with β set; whether it ran and how long it took."""
    logger = get_run_logger()
    cmd = [dvc_executable(), "exp", "run", *exp_args(beta), *(["--name", name] if name else []), *targets]
    start = time.perf_counter()
    returncode, output = run_streaming(cmd, root, venv_env())
    seconds = time.perf_counter() - start
    if returncode != 0:
        tail = "\n".join(output.splitlines()[-25:])
        raise StageFailed(f"`dvc exp run` with the found β exited {returncode}\n{tail}")
    logger.info("experiment with the found β (%d components) up to %s: %.1f s", len(beta), ", ".join(targets), seconds)
    return {"targets": targets, "seconds": round(seconds, 2), "output": output[-2000:]}


@flow(name="cad2real-generation-search")
def generation_search(root: str = ".", targets: list[str] | None = None, apply: bool = True,
                      experiment_name: str | None = None, retry_delay_seconds: float = 10.0,
                      track: bool = True) -> dict[str, Any]:
    """Search β (stage ``optimize_generation``), then, with ``apply``, run ``targets``
    (default ``evaluate@<m>`` for ``train.default``) as a DVC experiment with it."""
    base = Path(root).resolve()
    params = load_params(base / "params.yaml")
    paths = params.paths.model_dump()
    targets = targets or [f"evaluate@{m}" for m in params.train.default]
    out: dict[str, Any] = {}
    tracked = tracking.pipeline_run(base, params.model_dump(mode="json"), run_name="generation_search") if track \
        else contextlib.nullcontext()
    with tracked as parent:
        result = run_stage.with_options(name=STAGE, retry_delay_seconds=[retry_delay_seconds])(
            STAGE, str(base), single_item=False)
        out["search"] = result
        beta_file = base / params.paths.generation / "beta.yaml"
        beta = read_beta(beta_file)
        if parent is not None:
            tracking.log_stage(base, paths, STAGE, result, parent.info.run_id)
            import mlflow

            mlflow.log_artifact(str(beta_file))
        out["beta"] = beta
        if apply:
            out["experiment"] = run_experiment(str(base), beta, targets, experiment_name)
            if parent is not None:
                import mlflow

                mlflow.set_tag("experiment_targets", ",".join(targets))
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.generation")
    parser.add_argument("--search-only", action="store_true", help="search β, do not run the pipeline with it")
    parser.add_argument("--targets", help="comma-separated DVC targets of the experiment "
                                          "(default: evaluate@<m> for train.default)")
    parser.add_argument("--name", help="the DVC experiment's name")
    args = parser.parse_args(argv)
    setup_logging()
    load_params()  # fail before Prefect with the schema's message when params.yaml is wrong
    try:
        out = generation_search(root=".", targets=args.targets.split(",") if args.targets else None,
                                apply=not args.search_only, experiment_name=args.name)
    except (StageFailed, FileNotFoundError, ValueError) as exc:
        log.error("generation search failed: %s", str(exc).splitlines()[0])
        sys.exit(1)
    print(f"β ({len(out['beta'])} components) in {load_params().paths.generation}/beta.yaml; "
          f"report: reports/{STAGE}.md")
    if "experiment" in out:
        print(f"experiment with it: {', '.join(out['experiment']['targets'])} "
              f"({out['experiment']['seconds']:.0f} s); compare with `dvc exp show` / `dvc metrics diff`")


if __name__ == "__main__":
    main()
