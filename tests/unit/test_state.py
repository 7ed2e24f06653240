"""The before/after comparison of a second run: what counts as a change, what does not."""

from __future__ import annotations

import subprocess

import pytest

from proven import state


def snapshot(**sections: list[str]) -> dict[str, list[str]]:
    base = {name: [] for name in state.SECTIONS}
    base.update({k.replace("_", " "): v for k, v in sections.items()})
    return base


def test_identical_snapshots_show_no_difference():
    """Two equal snapshots: nothing changed."""
    snap = snapshot(packages=["mdadm 4.2-5"], arrays=["ARRAY /dev/md0 UUID=a"])

    assert state.differences(snap, snap) == []


def test_changed_created_and_removed_files_are_named():
    """A file under /etc whose checksum differs, a new one and a removed one are each named."""
    before = snapshot(**{"files": ["aa /etc/a", "bb /etc/b"]})
    after = snapshot(**{"files": ["ab /etc/a", "cc /etc/c"]})

    assert state.differences(before, after) == [
        "files: /etc/a changed",
        "files: /etc/b removed",
        "files: /etc/c created",
    ]


def test_a_new_package_and_a_lost_volume_are_named():
    """Lines that appear or vanish in the other sections are listed as new or gone."""
    before = snapshot(logical_volumes=["vg0 canary 8.00m"], packages=["a 1"])
    after = snapshot(logical_volumes=[], packages=["a 1", "b 2"])

    assert state.differences(before, after) == [
        "logical volumes: gone: vg0 canary 8.00m",
        "packages: new: b 2",
    ]


def test_parse_reads_what_the_script_prints_here(monkeypatch):
    """The script runs under bash and its output parses into every section."""
    # This machine's /opt can be large; /etc alone shows the same parsing.
    monkeypatch.setitem(
        state.SECTIONS, "files", "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum"
    )
    out = subprocess.run(["bash", "-c", state.script()], capture_output=True, text=True).stdout
    snap = state.parse(out)

    assert set(snap) == set(state.SECTIONS)
    assert any(line.endswith(" /etc/passwd") for line in snap["files"])
    assert any(line.startswith("bash ") for line in snap["packages"])


def test_parse_refuses_output_with_a_section_missing():
    """Output cut short (a dropped connection) is an error, not an empty section."""
    with pytest.raises(ValueError, match="packages"):
        state.parse(f"{state.MARK}arrays\n{state.MARK}volume groups\n")
