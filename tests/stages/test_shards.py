"""Sharded execution: atomic shards, resume after an interruption, atomic publish."""

from pathlib import Path

import pandas as pd
import pytest

from stages._shards import Shard, publish, run_shards, staging_dir

CALLS: list[str] = []


def work(shard: Shard, folder: Path) -> dict[str, list[dict]]:
    CALLS.append(shard.key)
    if shard.payload == "boom":
        raise RuntimeError(f"interrupted at {shard.key}")
    (folder / "x.txt").write_text(shard.key)
    return {"rows": [{"key": shard.key, "file": f"shards/{shard.key}/x.txt"}]}


def test_interrupted_run_resumes_and_publishes(tmp_path: Path):
    staging = staging_dir(tmp_path / "staging", "t", ({"a": 1},))
    shards = [Shard("m0", 1, "ok"), Shard("m1", 1, "boom"), Shard("m2", 1, "ok")]
    CALLS.clear()
    with pytest.raises(RuntimeError, match="interrupted at m1"):
        run_shards(shards, work, staging, tables=("rows",), workers=1, desc="t")
    assert (staging / "m0" / "rows.parquet").is_file()
    assert not (staging / "m1").exists()  # a failed shard leaves nothing behind
    assert not list(staging.glob(".*tmp*"))

    fixed = [Shard("m0", 1, "ok"), Shard("m1", 1, "ok"), Shard("m2", 1, "ok")]
    CALLS.clear()
    rows = run_shards(fixed, work, staging, tables=("rows",), workers=1, desc="t")["rows"]
    assert CALLS == ["m1", "m2"]  # m0 was not redone
    assert [r["key"] for r in rows] == ["m0", "m1", "m2"]

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous output")
    publish(fixed, staging, {"o": (out, None, pd.DataFrame(rows))})
    assert not (out / "old.txt").exists()
    assert (out / "shards" / "m1" / "x.txt").read_text() == "m1"
    assert not list((out / "shards" / "m1").glob("*.parquet"))
    assert len(pd.read_parquet(out / "manifest.parquet")) == 3
    assert not staging.exists()


def test_staging_key_depends_on_config_and_inputs(tmp_path: Path):
    f = tmp_path / "m.parquet"
    f.write_bytes(b"1")
    a = staging_dir(tmp_path, "render", ({"x": 1},), f)
    assert a == staging_dir(tmp_path, "render", ({"x": 1},), f)
    assert a != staging_dir(tmp_path, "render", ({"x": 2},), f)
    f.write_bytes(b"2")
    assert a != staging_dir(tmp_path, "render", ({"x": 1},), f)


def test_parallel_workers_match_serial(tmp_path: Path):
    shards = [Shard(f"m{i}", 1, "ok") for i in range(4)]
    serial = run_shards(shards, work, tmp_path / "s1", tables=("rows",), workers=1, desc="t")
    parallel = run_shards(shards, work, tmp_path / "s2", tables=("rows",), workers=2, desc="t")
    assert serial == parallel


def failing_init(message: str) -> None:
    raise FileNotFoundError(message)


def test_worker_initializer_error_is_raised_not_hung(tmp_path: Path):
    shards = [Shard(f"m{i}", 1, "ok") for i in range(3)]
    with pytest.raises(FileNotFoundError, match="no such prior"):
        run_shards(shards, work, tmp_path / "s", tables=("rows",), workers=2, desc="t",
                   initializer=failing_init, initargs=("no such prior",))
