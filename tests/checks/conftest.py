"""Fixtures shared by the testinfra checks: the parameters the runbook ran with.

Checks run through ``proven`` (verify, check), which passes the parameters the runbook ran
with in ``PROVEN_PARAMETERS``; the runbook's own defaults fill the rest.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import nbformat
import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def runbook_defaults(runbook: Path) -> dict[str, str]:
    """The NAME='value' assignments of the runbook's cell tagged ``parameters``."""
    nb = nbformat.read(runbook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for line in cell.source.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = " ".join(shlex.split(value))
    return values


@pytest.fixture(scope="module")
def params(request) -> dict[str, str]:
    """Parameters of the runbook that goes with the checks module asking for them."""
    number = Path(request.module.__file__).stem.split("_")[1]  # test_01_storage -> 01
    values = runbook_defaults(next(RUNBOOKS.glob(f"{number}-*.ipynb")))
    values.update(
        {k: str(v) for k, v in json.loads(os.environ.get("PROVEN_PARAMETERS", "{}")).items()}
    )
    return values
