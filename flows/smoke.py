"""``make smoke``: the whole main job on the small profile in a scratch workspace.

Copies the pipeline (``dvc.yaml``, ``core``, ``stages``, ``models``) into ``.smoke/`` with
``params.yaml`` + ``profiles/small.yaml`` (4 classes, 3 models, 4 views at 64², tiny
nets, two epochs), makes it a git + DVC repository and runs the Prefect flow there, MLflow
store included. A quick check that a machine can run everything; the tests use the same
workspace.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.params import apply_overrides

PIPELINE_FILES = ("dvc.yaml", "core", "stages", "models")


def absolute_shared(node: Any, root: Path) -> Any:
    """``../shared/...`` paths (relative to the project ``root``) made absolute, so a params
    file written into a scratch workspace still finds the real data."""
    if isinstance(node, dict):
        return {k: absolute_shared(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [absolute_shared(v, root) for v in node]
    if isinstance(node, str) and node.startswith("../shared/"):
        return str(root.parent / node.removeprefix("../"))
    return node


def profile_params(root: Path, profile: str = "small") -> dict[str, Any]:
    """``params.yaml`` of ``root`` with ``profiles/<profile>.yaml`` applied (dotted keys,
    as ``dvc exp run -S``), real-data paths absolute."""
    raw = yaml.safe_load((root / "params.yaml").read_text())
    overrides = yaml.safe_load((root / "profiles" / f"{profile}.yaml").read_text())
    return absolute_shared(apply_overrides(raw, overrides), root)


def _run(cwd: Path, *args: str) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)


def scratch_workspace(dest: Path, root: Path, params: dict[str, Any]) -> Path:
    """A git + DVC repository at ``dest`` holding the pipeline of ``root`` and ``params``."""
    dest.mkdir(parents=True)
    for item in PIPELINE_FILES:
        src = root / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / item)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".gitignore").write_text("__pycache__/\n/data/\n/mlruns/\n")
    dvc = str(Path(sys.executable).with_name("dvc"))
    for cmd in (("git", "init", "-q"), ("git", "config", "user.email", "smoke@cad2real.local"),
                ("git", "config", "user.name", "cad2real smoke"), (dvc, "init", "-q"),
                (dvc, "config", "core.analytics", "false"), ("git", "add", "-A"), ("git", "commit", "-qm", "pipeline")):
        _run(dest, *cmd)
    return dest


def main() -> None:
    from core.io import setup_logging
    from flows.pipeline import StageFailed, pipeline, summary

    setup_logging()
    root = Path(".").resolve()
    dest = root / ".smoke"
    shutil.rmtree(dest, ignore_errors=True)
    start = time.perf_counter()
    scratch_workspace(dest, root, profile_params(root))
    try:
        pipeline(root=str(dest), retry_delay_seconds=1.0)
    except StageFailed as exc:
        print(f"smoke run failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        sys.exit(1)
    print(f"smoke run (profiles/small.yaml) done in {time.perf_counter() - start:.1f} s in {dest}")
    print("\n".join(summary(dest / "params.yaml")))


if __name__ == "__main__":
    main()
