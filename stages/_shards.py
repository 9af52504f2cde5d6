"""Sharded, resumable, parallel stage execution shared by render, composite and proxy_real.

A stage splits its work into shards (one per model, typically). Each shard is produced in
a temporary folder and renamed into a *staging* folder when complete, together with its
manifest rows (``<table>.parquet``). The staging folder is keyed by everything that
determines the output, and it is not a DVC output, so when a run is interrupted the next
run finds the finished shards and does only the rest. :func:`publish` then moves the
shards into the stage's output folder(s) and writes the manifests in one atomic rename
per output.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from core.io import MANIFEST, atomic_dir, stable_hash, write_manifest
from core.params import ComputeParams

log = logging.getLogger("cad2real")

# work(shard, folder) writes the shard's files below ``folder`` and returns its rows per
# table; file paths in the rows are relative to ``folder`` and become relative to the
# output root after ``publish`` (they are prefixed with ``shards/<key>/``).
Work = Callable[["Shard", Path], dict[str, list[dict]]]


@dataclass(frozen=True)
class Shard:
    key: str  # folder name, unique within the stage (e.g. the model id)
    n_items: int  # for the progress bar
    payload: Any  # picklable description of the work


def staging_dir(root: str | Path, stage: str, config: Any, *inputs: Path) -> Path:
    """The staging folder of a stage run, keyed by its configuration (params sections,
    seed; pydantic models are dumped) and the bytes of its input manifests."""
    def plain(x: Any) -> Any:
        return x.model_dump(mode="json") if hasattr(x, "model_dump") else x

    config = [plain(c) for c in config] if isinstance(config, tuple) else plain(config)
    key = stable_hash(stage, config, *[hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in inputs])
    return Path(root) / f"{stage}-{key[:16]}"


def shard_prefix(shard: Shard) -> str:
    return f"shards/{shard.key}"


_INIT_ERROR: BaseException | None = None


def _safe_init(initializer: Callable[..., None], *args: Any) -> None:
    """Run a worker initializer, keeping its exception to raise with the first shard (an
    initializer that raises would otherwise only break the pool with a generic message)."""
    global _INIT_ERROR
    try:
        initializer(*args)
    except Exception as exc:  # re-raised unchanged by _run_one
        _INIT_ERROR = exc


def _run_one(work: Work, shard: Shard, staging: str) -> dict[str, list[dict]]:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    final = Path(staging) / shard.key
    tmp = final.with_name(f".{shard.key}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tables = work(shard, tmp)
        for table, rows in tables.items():
            pd.DataFrame(rows).to_parquet(tmp / f"{table}.parquet", index=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return tables


def _load_done(shard_dir: Path, tables: tuple[str, ...]) -> dict[str, list[dict]] | None:
    paths = [shard_dir / f"{t}.parquet" for t in tables]
    if not all(p.is_file() for p in paths):
        return None
    return {t: pd.read_parquet(p).to_dict("records") for t, p in zip(tables, paths)}


def run_shards(
    shards: list[Shard],
    work: Work,
    staging: Path,
    *,
    tables: tuple[str, ...],
    workers: int,
    desc: str,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    finalizer: Callable[[], None] | None = None,
    compute: ComputeParams | None = None,
) -> dict[str, list[dict]]:
    """Run every shard not already in ``staging``; return all rows per table, in shard order.

    With ``workers > 1`` shards run in spawned processes (``initializer`` once per process,
    e.g. to create its GL context); with one worker they run here, between
    ``initializer`` and ``finalizer``. With ``compute.engine == "dask"`` they run as Dask
    tasks on a ``distributed`` cluster (a LocalCluster of ``workers`` single-threaded
    worker processes, or the scheduler at ``compute.dask_address``), ``initializer`` once
    per worker process: the same code path, the same bytes.
    """
    staging.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[dict]]] = {}
    todo = []
    for shard in shards:
        done = _load_done(staging / shard.key, tables)
        if done is None:
            todo.append(shard)
        else:
            results[shard.key] = done
    if results:
        log.info("%s: resuming, %d of %d shards already done in %s", desc, len(results), len(shards), staging)
    workers = max(1, min(workers, len(todo)))
    with tqdm(total=sum(s.n_items for s in todo), desc=desc, unit="img") as progress, ExitStack() as stack:
        if compute is not None and compute.engine == "dask" and todo:
            outputs = _dask_outputs(stack, compute, workers, todo, work, staging, initializer, initargs)
        elif workers == 1:
            if initializer is not None and todo:
                initializer(*initargs)
                if finalizer is not None:
                    stack.callback(finalizer)
            outputs = (_run_one(work, shard, str(staging)) for shard in todo)
        else:
            # An executor, not multiprocessing.Pool: a worker that dies (e.g. a crash in the
            # GL driver) raises BrokenProcessPool here instead of hanging the stage.
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, mp_context=mp.get_context("spawn"),
                initializer=_safe_init if initializer else None,
                initargs=(initializer, *initargs) if initializer else (),
            ))
            outputs = pool.map(_Call(work, str(staging)), todo)
        for shard, tables_out in zip(todo, outputs):
            results[shard.key] = tables_out
            progress.update(shard.n_items)
    merged: dict[str, list[dict]] = {t: [] for t in tables}
    for shard in shards:
        for t in tables:
            merged[t].extend(results[shard.key].get(t, []))
    return merged


def _dask_outputs(stack: ExitStack, compute: ComputeParams, workers: int, todo: list[Shard], work: Work,
                  staging: Path, initializer: Callable[..., None] | None, initargs: tuple) -> Iterator[dict]:
    """Shard results, in order, computed on a Dask cluster (closed with ``stack``)."""
    from distributed import Client, LocalCluster

    if compute.dask_address:
        client = stack.enter_context(Client(compute.dask_address))
    else:
        cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=None))
        client = stack.enter_context(Client(cluster))
    log.info("dask: %d worker(s) at %s", len(client.scheduler_info()["workers"]), client.scheduler.address)
    # The initializer data goes to every worker once; the initializer itself runs in the
    # worker's task thread on its first shard (a GL context belongs to the thread that
    # made it current, and a single-threaded worker runs every task on that thread).
    [shared] = client.scatter([initargs], broadcast=True)
    call = _DaskCall(work, str(staging), initializer, token=shared.key)
    futures = client.map(call, todo, initargs=shared, pure=False)
    return (future.result() for future in futures)


_DASK_INITIALIZED: set[str] = set()  # runs (scatter keys) this worker process is set up for




class _Call:
    """Picklable ``shard -> _run_one(work, shard, staging)`` for the executor."""

    def __init__(self, work: Work, staging: str) -> None:
        self.work, self.staging = work, staging

    def __call__(self, shard: Shard) -> dict[str, list[dict]]:
        return _run_one(self.work, shard, self.staging)


class _DaskCall(_Call):
    """:class:`_Call` for Dask, initializing the worker process once per stage run (a
    long-lived remote worker serves several stages in turn)."""

    def __init__(self, work: Work, staging: str, initializer: Callable[..., None] | None, token: str) -> None:
        super().__init__(work, staging)
        self.initializer, self.token = initializer, token

    def __call__(self, shard: Shard, initargs: tuple = ()) -> dict[str, list[dict]]:
        if self.token not in _DASK_INITIALIZED:
            if self.initializer is not None:
                _safe_init(self.initializer, *initargs)
            _DASK_INITIALIZED.add(self.token)
        return super().__call__(shard)


def publish(
    shards: list[Shard],
    staging: Path,
    outputs: Mapping[str, tuple[Path, str | None, pd.DataFrame]],
) -> None:
    """Move finished shards into the outputs and write their manifests, atomically.

    ``outputs`` maps an output name to (output root, sub-folder of each staged shard that
    goes there or None for the whole shard folder, manifest). Each output appears in one
    rename; the staging folder is removed at the end.
    """
    with ExitStack() as stack:
        tmps = {name: stack.enter_context(atomic_dir(root)) for name, (root, _, _) in outputs.items()}
        # Sub-folder outputs first: a whole-shard output takes what is left.
        for name, (_, sub, manifest) in sorted(outputs.items(), key=lambda item: item[1][1] is None):
            (tmps[name] / "shards").mkdir()
            for shard in shards:
                src = staging / shard.key / sub if sub else staging / shard.key
                dst = tmps[name] / shard_prefix(shard)
                if src.is_dir():
                    src.rename(dst)
                    for table in dst.glob("*.parquet"):
                        table.unlink()
                else:
                    dst.mkdir()
            write_manifest(manifest, tmps[name] / MANIFEST)
    shutil.rmtree(staging, ignore_errors=True)
