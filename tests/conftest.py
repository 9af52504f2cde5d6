"""Shared fixtures: the repository root, ../shared/data, a tiny params profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# As flows/_env.py does for `make run`, before any test imports prefect or mlflow.
for _key, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                     "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
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
    from flows.smoke import profile_params

    raw = profile_params(ROOT)
    if tmp is not None:
        raw["paths"] = {k: str(tmp / v) for k, v in raw["paths"].items()}
    return raw


@pytest.fixture
def small_params(tmp_path: Path):
    from core.params import parse_params

    return parse_params(small_params_raw(tmp_path), "small profile")
