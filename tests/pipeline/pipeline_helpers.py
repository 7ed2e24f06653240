"""Running `proven` as a user would, and reading what it left: shared by the pipeline tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def proven(*args: str, timeout: float = 3000) -> subprocess.CompletedProcess:
    """Run the `proven` command the way a user would, capturing what it prints."""
    proc = subprocess.run(
        [sys.executable, "-m", "proven", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    # Shown by pytest when a test fails, and kept in CI's log either way.
    print(proc.stdout)
    return proc


def report() -> dict:
    return json.loads((ROOT / "build" / "report.json").read_text())


def lab_leftovers() -> tuple[list[str], list[str]]:
    from proven import vm

    return vm.leftovers()
