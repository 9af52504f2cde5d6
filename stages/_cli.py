"""The shared entry-point plumbing of every stage module (``python -m stages.<name>``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.io import setup_logging
from core.params import Params, ParamsError, load_params

log = logging.getLogger("cad2real")


def stage_main(name: str, run: Callable[..., Any], argv: list[str] | None = None, item: str | None = None) -> None:
    """Parse ``--params``, load and validate it, run the stage, log what it did and how long.
    A matrix stage (``train@gmcml``) names its ``item`` argument: ``run(params, item)``.

    A bad params file or bad input exits with status 2 and the message alone (no traceback
    for errors that name the file and the problem).
    """
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}")
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
    if item is not None:
        parser.add_argument(item, help=f"the {item} this run of the stage is for (its DVC matrix item)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_params(args.params)
        start = time.perf_counter()
        label = name if item is None else f"{name}@{getattr(args, item)}"
        log.info("stage %s: start", label)
        run(params) if item is None else run(params, getattr(args, item))
        log.info("stage %s: done in %.1f s", label, time.perf_counter() - start)
    except (ParamsError, FileNotFoundError, ValueError) as exc:
        log.error("stage %s failed: %s", name, exc)
        sys.exit(2)
