"""The import-layer contract of pyproject.toml: flows -> stages -> core -> models."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_import_layers_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 0 broken" in proc.stdout
