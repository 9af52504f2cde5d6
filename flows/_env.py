"""Defaults for Prefect and MLflow, set before either is imported.

Prefect keeps its ephemeral database inside the project (``.prefect/``), sends no
analytics and waits up to 180 s for its ephemeral API to start; MLflow sends no telemetry. Anything already set in the environment wins
(e.g. ``PREFECT_API_URL`` for a Prefect server, ``MLFLOW_TRACKING_URI`` for MLflow's).
"""

from __future__ import annotations

import os
from pathlib import Path

for key, value in {
    "PREFECT_HOME": str(Path.cwd() / ".prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The ephemeral API's 20 s default start-up wait is too short on a loaded 2-core
    # machine (CI failed on it once, while other processes were rendering).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(key, value)
