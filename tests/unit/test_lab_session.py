"""The lab's parts that need no VM: parameterised copies, state, stopping, JupyterLab's flags."""

from __future__ import annotations

import json
import stat
import subprocess

import nbformat
import pytest

from proven import lab
from proven.guides import by_slug
from proven.runbook import RunbookError

STORAGE = by_slug("01-storage")
APACHE = by_slug("03-apache-fcgid")


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    """Copies and state go to a folder of the test's own, never build/lab."""
    monkeypatch.setattr(lab, "LAB_DIR", tmp_path / "lab")
    monkeypatch.setattr(lab, "STATE", tmp_path / "lab" / ".lab.json")
    monkeypatch.setattr(lab, "RUNTIME", tmp_path / "lab" / ".runtime")
    return tmp_path / "lab"


def test_copy_carries_the_lab_values_right_after_the_parameters_cell(lab_dir):
    """The storage copy gets the VM's disks in an injected cell; the runbook is untouched."""
    before = STORAGE.runbook.read_text()
    values = lab.lab_values(lab.Options(guides=[STORAGE]))

    (path,) = lab.write_notebooks([STORAGE], values)
    nb = nbformat.read(path, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]

    assert path == lab_dir / "01-storage.ipynb"
    assert tags[:2] == [["parameters"], ["injected-parameters"]]
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata["tags"])
    assert "DISKS='/dev/vdb /dev/vdc'" in injected
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert STORAGE.runbook.read_text() == before


def test_copies_of_an_earlier_lab_are_removed(lab_dir):
    """Only this lab's runbooks are offered: a copy made for another target does not stay."""
    lab_dir.mkdir()
    (lab_dir / "03-apache-fcgid.ipynb").write_text("{}")
    (lab_dir / ".ipynb_checkpoints").mkdir()

    lab.write_notebooks([STORAGE], {"01-storage": {}})

    assert sorted(p.name for p in lab_dir.iterdir()) == ["01-storage.ipynb"]


def test_other_targets_start_from_the_runbooks_own_defaults():
    """Lab values fit the lab VM only: a local lab injects nothing of them."""
    values = lab.lab_values(lab.Options(guides=[STORAGE, APACHE], target="local"))

    assert values == {"01-storage": {}, "03-apache-fcgid": {}}


def test_command_line_parameter_goes_only_to_runbooks_that_have_it():
    """-p VG_NAME reaches the storage runbook and not the Apache one."""
    opts = lab.Options(guides=[STORAGE, APACHE], extra={"VG_NAME": "vglab"})

    values = lab.lab_values(opts)

    assert values["01-storage"]["VG_NAME"] == "vglab"
    assert "VG_NAME" not in values["03-apache-fcgid"]


def test_parameter_no_runbook_has_is_refused_by_name():
    """A misspelt -p stops the lab before anything starts, naming the parameter."""
    opts = lab.Options(guides=[STORAGE, APACHE], extra={"DISKZ": "/dev/vdb"})

    with pytest.raises(RunbookError, match="DISKZ"):
        lab.lab_values(opts)


def test_jupyterlab_listens_on_loopback_on_exactly_the_port_chosen():
    """127.0.0.1 only, no fallback to another port, no terminals, no internet lookups."""
    argv = lab.jupyter_command(8123)

    assert "--ServerApp.ip=127.0.0.1" in argv
    assert "--ServerApp.port=8123" in argv and "--ServerApp.port_retries=0" in argv
    assert "--ServerApp.terminals_enabled=False" in argv
    assert "--LabApp.news_url=None" in argv


def test_state_holding_the_token_is_private(lab_dir):
    """Only the owner may read the state: its address carries the token."""
    lab.State(pid=1, url="http://127.0.0.1:1/lab?token=secret").save()

    mode = stat.S_IMODE(lab.STATE.stat().st_mode)

    assert mode == 0o600
    assert json.loads(lab.STATE.read_text())["url"].endswith("token=secret")


def test_stop_without_a_lab_says_so_and_succeeds(caplog):
    """Stopping when nothing runs is not an error."""
    caplog.set_level("INFO", logger="proven")

    assert lab.stop() == 0
    assert "no lab is running" in caplog.text


def test_stop_clears_what_a_killed_lab_left():
    """The state of a lab whose process is gone is undone and removed by --stop."""
    dead = subprocess.Popen(["true"])  # its PID is free once it has been waited for
    dead.wait()
    lab.State(pid=dead.pid, target="local").save()

    assert lab.stop() == 0
    assert not lab.STATE.exists()


def test_a_pid_reused_by_another_program_is_not_taken_for_jupyterlab():
    """Only a process whose command line names jupyterlab is ever signalled as JupyterLab."""
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            assert not lab.is_jupyter_process(other.pid)
            assert not lab.is_lab_process(other.pid)
        finally:
            other.kill()
