"""The pipeline's own tests: they run `proven verify` for real, on real lab VMs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session", autouse=True)
def needs_root():
    if os.geteuid() != 0:
        pytest.fail("the pipeline tests need root (libvirtd, network namespaces)", pytrace=False)


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
