"""Stage ``validate``: the data contracts of every manifest, before any training.

Runs the great-expectations suites of :mod:`core.contracts` on the catalog, renders,
composites, adaptation pairs and proxy-real manifests, writes the full report to
``<paths.reports>/validation.json`` and a summary to ``<paths.metrics>/validate.json``.
A failed suite fails the stage (exit 2) with one line per failed expectation, so
``dvc repro`` and the Prefect flow stop before training; the report stays for reading.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.contracts import ContractResult, validate_all, write_report
from core.io import read_manifest, write_metrics
from core.params import Params
from stages._cli import stage_main

log = logging.getLogger("cad2real.validate")
REPORT = "validation.json"


class ContractFailed(ValueError):
    """At least one suite failed; the message lists every failed expectation."""


def manifests(params: Params) -> dict[str, str]:
    """Suite name -> manifest folder (relative as in params, so reports are portable)."""
    folders = {"catalog": params.paths.catalog, "renders": params.paths.renders,
               "composites": params.paths.composites, "adaptation_pairs": params.paths.adaptation_pairs,
               "proxy_real": params.paths.proxy_real}
    if not params.composite.adaptation_pairs:
        folders.pop("adaptation_pairs")
    return folders


def check(params: Params) -> list[ContractResult]:
    """Every suite; the category set is the catalog's (what params configured)."""
    categories = sorted(read_manifest(params.paths.catalog)["category"].unique())
    p = params.contracts
    return validate_all(manifests(params), categories=categories, class_balance=p.class_balance,
                        image_sample=p.image_sample, check_files=p.check_files, seed=params.seed)


def run(params: Params) -> list[ContractResult]:
    results = check(params)
    report = write_report(results, Path(params.paths.reports) / REPORT)
    write_metrics(params.paths.metrics, "validate", {
        "success": all(r.success for r in results),
        "suites": {r.suite: {"success": r.success, "rows": r.rows, "failed_expectations": len(r.failures)}
                   for r in results},
    })
    for r in results:
        log.info("validate: %-16s %6d rows  %s", r.suite, r.rows,
                 "passed" if r.success else f"FAILED ({len(r.failures)} expectations)")
    failed = [line for r in results for line in r.failures]
    if failed:
        raise ContractFailed(f"data contracts failed (report: {report}):\n  " + "\n  ".join(failed))
    log.info("validate: every suite passed; wrote %s", report)
    return results


def main() -> None:
    stage_main("validate", run)


if __name__ == "__main__":
    main()
