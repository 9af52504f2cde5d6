"""One small-profile pipeline built once per test session and shared by the integration
modules: building it (`dvc repro`, a few minutes) is most of their time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory) -> Path:
    """A scratch repository (the small profile, without the generation search) after
    `dvc repro`. Read it, never change it: a test that changes a repository works on
    :func:`copy_repo` of it."""
    from tests.integration.test_dvc_pipeline import SEARCH_STAGES, make_repo, sh

    path = make_repo(tmp_path_factory.mktemp("built") / "repo", drop_stages=SEARCH_STAGES)
    sh(path, "dvc", "repro")
    return path


def copy_repo(src: Path, dest: Path) -> Path:
    """A copy of a built repository (git, DVC cache and outputs): DVC sees it up to date."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
