"""Files a runbook ships onto its target before step 1 (the Funambol checker)."""

from __future__ import annotations

import os
import subprocess

import nbformat
import pytest

from proven import runbook
from proven.guides import ROOT, by_slug
from proven.runbook import RunbookError, Target


def shipping_runbook(tmp_path, ship: dict) -> object:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("true")])
    nb.metadata["kernelspec"] = {"name": "proven-shell", "language": "bash"}
    nb.metadata["proven"] = {"ship": ship}
    path = tmp_path / "ships.ipynb"
    nbformat.write(nb, path)
    return path


def test_funambol_plan_names_the_checker_it_copies():
    """The plan says what lands where on the target before anything runs."""
    text = runbook.plan(by_slug("06-funambol").runbook, {})

    assert "src/proven/funambol.py -> /usr/local/bin/funambol-check" in text


def test_ship_copies_an_exact_executable_copy(tmp_path):
    """On a local target the file arrives byte for byte, executable, with no .new left."""
    dest = tmp_path / "bin" / "funambol-check"
    path = shipping_runbook(tmp_path, {str(dest): "src/proven/funambol.py"})

    runbook.ship(path, Target("local", sudo=False))

    assert dest.read_bytes() == (ROOT / "src/proven/funambol.py").read_bytes()
    assert os.access(dest, os.X_OK)
    assert not dest.with_name("funambol-check.new").exists()
    shipped = subprocess.run([dest, "--help"], capture_output=True, text=True)
    assert shipped.returncode == 0 and "usage: funambol-check" in shipped.stdout


@pytest.mark.parametrize(
    "ship", [{"relative/dest": "src/proven/funambol.py"}, {"/tmp/x": "src/proven/nothing.py"}]
)
def test_bad_ship_entry_is_refused_before_anything_runs(tmp_path, ship):
    """A relative destination or a missing source is a clear error naming the entry."""
    path = shipping_runbook(tmp_path, ship)

    with pytest.raises(RunbookError, match="cannot ship"):
        runbook.plan(path, {})


def test_ship_failure_names_the_file_and_the_target_step(tmp_path):
    """A destination that cannot be written stops the run before step 1 with the reason."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = shipping_runbook(tmp_path, {str(blocker / "sub" / "x"): "src/proven/funambol.py"})

    with pytest.raises(RunbookError, match="could not copy funambol.py .* before step 1"):
        runbook.ship(path, Target("local", sudo=False))
