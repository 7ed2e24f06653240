"""Faults that need a real VM: each ends non-zero, with one clear message, and nothing left.

No VM, volume, daemon or namespace may outlive a failed run: every test ends by asking libvirt,
and the host is as the test found it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from pipeline_helpers import FIXTURES, ROOT, host_daemons, lab_leftovers, proven, report


@pytest.fixture(autouse=True)
def host_as_found():
    """A failed verify stops the daemons it started and removes the namespace it made."""
    before = host_daemons()
    yield
    assert host_daemons() == before


def no_passed(proc) -> None:
    """The word "passed" is nowhere in what verify printed, and the report says failed.

    Each of these runs has one runbook, which fails: nothing in it may pass. The phases that
    only prepare the ground (host, VM up, ...) say "done". Guides an earlier run proved, kept
    in the report as carried over, are that run's claim, not this one's.
    """
    printed = [line for line in proc.stdout.splitlines() if "carried over" not in line]
    assert "passed" not in "\n".join(printed)
    assert report()["outcome"] == "failed"


def test_vm_not_booting_in_time_fails_the_vm_phase(monkeypatch):
    """A boot timeout stops verify in 'VM up', says what to do, and leaves no domain."""
    monkeypatch.setenv("PROVEN_BOOT_TIMEOUT", "2")
    proc = proven("verify", "--runbook", str(FIXTURES / "90-fails-midway.ipynb"), "--no-site")

    assert proc.returncode != 0
    assert "VM up" in proc.stdout and "failed" in proc.stdout
    assert "next:" in proc.stdout
    no_passed(proc)
    assert lab_leftovers() == ([], [])


def test_ssh_connection_lost_mid_step_is_named():
    """sshd ending the session mid-step fails that step with 'connection was lost'."""
    proc = proven("verify", "--runbook", str(FIXTURES / "92-drops-ssh.ipynb"), "--no-site")

    assert proc.returncode != 0
    assert "92-drops-ssh" in proc.stdout and "step 2" in proc.stdout
    assert "SSH connection to the target was lost" in proc.stdout
    assert "after the cut" not in proc.stdout
    no_passed(proc)
    assert lab_leftovers() == ([], [])


def test_ctrl_c_during_a_step_stops_and_cleans_up():
    """SIGINT while a step runs: verify stops, says it was interrupted, destroys the VM."""
    verify = subprocess.Popen(
        [sys.executable, "-m", "proven", "verify", "--runbook", str(FIXTURES / "93-hangs.ipynb")]
        + ["--no-site"],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # As from a terminal: a test run in the background would hand SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    deadline = time.monotonic() + 1200
    for line in verify.stdout:
        seen.append(line)
        if "step 1/1 Wait" in line:
            time.sleep(5)  # well inside `sleep 900` on the VM
            os.kill(verify.pid, signal.SIGINT)
            break
        assert time.monotonic() < deadline, "the hanging step never started"
    seen += verify.stdout.readlines()
    rc = verify.wait(timeout=600)
    out = "".join(seen)
    print(out)

    assert rc != 0
    assert "interrupted" in out
    assert "done" not in [line.strip() for line in out.splitlines()]  # the step's last echo
    assert "Traceback" not in out
    assert report()["outcome"] == "failed"
    assert report()["runbooks"][0]["outcome"] == "failed"
    assert lab_leftovers() == ([], [])


def test_disk_holding_data_is_refused_without_wipe():
    """A filesystem on /dev/vdb stops the storage runbook at its disk check, untouched."""
    proc = proven(
        "verify",
        "--runbook",
        str(FIXTURES / "94-disk-with-data.ipynb"),
        "01-storage",
        "--no-site",
        "--force",
    )
    storage = next(r for r in report()["runbooks"] if r["slug"] == "01-storage")

    assert proc.returncode != 0
    assert storage["outcome"] == "failed"
    assert storage["failed_step"].startswith("3 ")
    assert "/dev/vdb holds data" in proc.stdout
    assert "set WIPE='yes' to erase it" in proc.stdout
    assert report()["outcome"] == "failed"
    assert lab_leftovers() == ([], [])


def test_hung_step_stops_at_its_limit_and_keep_leaves_the_vm_to_look_at(monkeypatch):
    """A step past PROVEN_STEP_TIMEOUT is stopped on the VM too; --keep leaves the VM up."""
    from proven import vm

    monkeypatch.setenv("PROVEN_STEP_TIMEOUT", "30")
    proc = proven("verify", "--runbook", str(FIXTURES / "93-hangs.ipynb"), "--no-site", "--keep")

    assert proc.returncode != 0
    assert "93-hangs" in proc.stdout and "step 1" in proc.stdout
    assert "step stopped after 30 s (PROVEN_STEP_TIMEOUT)" in proc.stdout
    no_passed(proc)
    assert "VM kept; log in with: ip netns exec proven ssh -F build/vm/ssh_config" in proc.stdout
    assert lab_leftovers()[0], "--keep left no VM"
    left = vm.ssh("pgrep -a sleep || true", timeout=60)
    assert left.returncode == 0 and "sleep 900" not in left.stdout

    # The next plain verify clears what the kept run left before it starts; `exit` fails it.
    proc = proven("verify", "--runbook", str(FIXTURES / "95-calls-exit.ipynb"), "--no-site")

    assert "removing leftover domain proven_default" in proc.stdout
    assert proc.returncode != 0
    assert "95-calls-exit" in proc.stdout and "step 2 'Leave early'" in proc.stdout
    assert "called exit 0" in proc.stdout
    assert "after the exit" not in proc.stdout
    no_passed(proc)
    assert lab_leftovers() == ([], [])


def test_disk_that_does_not_exist_is_refused_before_any_step():
    """DISKS naming a device the VM lacks stops verify before step 1, naming the disk."""
    proc = proven("verify", "01-storage", "-p", "DISKS=/dev/vdb /dev/vdz", "--no-site", "--force")
    storage = report()["runbooks"][0]

    assert proc.returncode != 0
    assert "no such disk on the VM: /dev/vdz" in proc.stdout
    assert "next:" in proc.stdout
    assert storage["steps_run"] == 0 and storage["outcome"] != "passed"
    no_passed(proc)
    assert lab_leftovers() == ([], [])
