"""The plan of a real runbook: every step with the parameters worked out, nothing run."""

from __future__ import annotations

from proven import runbook
from proven.guides import by_slug

FOUR = "/dev/vdb /dev/vdc /dev/vdd /dev/vde"


def test_storage_plan_with_four_disks_builds_a_raid10_data_array():
    """With four disks the plan shows RAID10 for md2 and RAID1 for /boot and /."""
    text = runbook.plan(by_slug("01-storage").runbook, {"DISKS": FOUR})

    assert "DATA_RAID='10'" in text
    assert '"md2:data:10"' in text
    assert "md0:boot:1 md1:root:1" in text
    assert '--raid-devices="4"' in text


def test_storage_plan_with_two_disks_mirrors_the_data_array():
    """With the default two disks the data array is RAID1."""
    text = runbook.plan(by_slug("01-storage").runbook, {})

    assert "DATA_RAID='1'" in text
    assert "for disk in /dev/sda /dev/sdb; do" in text


def test_plan_says_it_ran_nothing():
    """The plan's first line tells the operator nothing was executed."""
    text = runbook.plan(by_slug("01-storage").runbook, {"DISKS": FOUR})

    assert text.splitlines()[0].endswith("(a plan: nothing was run)")
