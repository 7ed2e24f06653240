"""Faults that must stop verify before it touches anything, with a message naming the cause."""

from __future__ import annotations

from pipeline_helpers import lab_leftovers, proven, report


def test_unknown_parameter_stops_verify_before_any_vm():
    """A parameter the runbook does not have is named, and no VM is made."""
    proc = proven("verify", "01-storage", "-p", "DISKZ=/dev/vdb", "--no-site")
    data = report()

    assert proc.returncode != 0
    assert "DISKZ" in proc.stdout and "01-storage" in proc.stdout
    assert data["outcome"] == "failed"
    assert all(p["name"] != "VM up" for p in data["phases"])
    assert "passed" not in {r["outcome"] for r in data["runbooks"]}
    assert lab_leftovers() == ([], [])


def test_unknown_guide_is_refused_with_the_known_names():
    """Asking for a guide that does not exist lists the guides that do."""
    proc = proven("verify", "99-nope")

    assert proc.returncode == 2
    assert "no guide called '99-nope'" in proc.stdout
    assert "01-storage" in proc.stdout


def test_malformed_parameter_is_refused():
    """-p needs NAME=VALUE."""
    proc = proven("verify", "01-storage", "-p", "DISKS")

    assert proc.returncode == 2
    assert "is not NAME=VALUE" in proc.stdout
