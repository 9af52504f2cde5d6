"""Shared fixtures: the repository root, ../shared/data, a tiny params profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

# As flows/_env.py does for `make run`, before any test imports prefect or mlflow.
for _key, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false"}.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} not found (../shared/data is optional)")
    return path


def small_params_raw(tmp: Path | None = None) -> dict:
    """params.yaml with the small profile (profiles/small.yaml) applied; paths under ``tmp``."""
    from core.params import apply_overrides

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    overrides = yaml.safe_load((ROOT / "profiles" / "small.yaml").read_text())
    raw = apply_overrides(raw, overrides)
    if tmp is not None:
        raw["paths"] = {k: str(tmp / v) for k, v in raw["paths"].items()}
    return absolute_shared(raw)


def absolute_shared(node):
    """``../shared/data/...`` (relative to the project) as absolute paths, so a params
    file written into a scratch repository still finds the real data."""
    if isinstance(node, dict):
        return {k: absolute_shared(v) for k, v in node.items()}
    if isinstance(node, list):
        return [absolute_shared(v) for v in node]
    if isinstance(node, str) and node.startswith("../shared/"):
        return str(ROOT.parent / node.removeprefix("../"))
    return node


@pytest.fixture
def small_params(tmp_path: Path):
    from core.params import parse_params

    return parse_params(small_params_raw(tmp_path), "small profile")
