"""The main job: ``dvc repro`` of the whole pipeline, then where every output is.

DVC is the only cache and the only definition of a stage: this module never runs a stage
itself, so a second run with nothing changed re-runs nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from core.io import read_manifest, setup_logging
from core.params import load_params

log = logging.getLogger("cad2real.pipeline")


def dvc_executable() -> str:
    """The dvc of this interpreter's environment (the project venv), else the PATH's."""
    local = Path(sys.executable).with_name("dvc")
    return str(local) if local.exists() else (shutil.which("dvc") or "dvc")


def stages(dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    return list(yaml.safe_load(dvc_yaml.read_text())["stages"])


def repro(targets: list[str] | None = None, *, force: bool = False) -> None:
    cmd = [dvc_executable(), "repro", *(["--force"] if force else []), *(targets or [])]
    log.info("running: %s", " ".join(cmd))
    # dvc.yaml's commands say `python`: make it this environment's interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(cmd, check=True, env=env)


def summary(params_path: Path = Path("params.yaml")) -> list[str]:
    """One line per output: what it is, how many rows, where it is."""
    params = load_params(params_path)
    lines = []
    for name, path in (
        ("catalog", params.paths.catalog), ("renders", params.paths.renders),
        ("composites", params.paths.composites), ("adaptation pairs", params.paths.adaptation_pairs),
        ("proxy-real set (SYNTHETIC)", params.paths.proxy_real),
    ):
        try:
            n = len(read_manifest(path))
            lines.append(f"  {name:<28} {n:>7} rows  {Path(path).resolve()}")
        except FileNotFoundError:
            lines.append(f"  {name:<28} {'-':>7}       (not produced yet) {path}")
    model = Path(params.paths.models) / params.evaluate.model
    lines.append(f"  {'model':<28} {'':>7}       {model.resolve()} (c2r predict IMAGE)")
    lines.append(f"  {'evaluation report':<28} {'':>7}       {(Path(params.paths.reports) / 'evaluate.md').resolve()}")
    lines.append(f"  {'metrics':<28} {'':>7}       {Path(params.paths.metrics).resolve()} (dvc metrics show)")
    return lines + results(Path(params.paths.metrics) / "evaluate.json")


def results(path: Path) -> list[str]:
    """The evaluation's headline figures, one line per dataset, with the domain label."""
    if not path.is_file():
        return []
    values = json.loads(path.read_text())
    lines = [f"evaluation of a model trained on {values['model']['training_data']}:"]
    for name, r in values["datasets"].items():
        lines.append(f"  {name:<24} {r['domain']:<24} {r['objects']:>5} objects  accuracy {r['accuracy']:.3f}  "
                     f"per-class mean {r['mean_class_accuracy']:.3f}")
    lines += [f"  {why}" for why in values["skipped"].values()]
    return lines


def main() -> None:
    setup_logging()
    start = time.perf_counter()
    load_params()  # fail before DVC with the schema's message when params.yaml is wrong
    try:
        repro()
    except subprocess.CalledProcessError as exc:
        log.error("pipeline failed: `dvc repro` exited with %d (see the stage's error above)", exc.returncode)
        sys.exit(exc.returncode)
    print(f"cad2real pipeline up to date in {time.perf_counter() - start:.1f} s; outputs:")
    print("\n".join(summary()))


if __name__ == "__main__":
    main()
