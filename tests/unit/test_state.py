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


def bash(script: str) -> str:
    """Run ``script`` here, as verify runs it on the VM; an error if it fails."""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout


def test_canaries_untouched_by_the_second_run_are_intact(tmp_path):
    """Random bytes laid in files, read back unchanged: nothing spoiled."""
    paths = [str(tmp_path / "root-canary"), str(tmp_path / "boot-canary")]

    laid = state.lay_canaries(bash, paths)

    assert sorted(laid) == sorted(paths)
    assert (tmp_path / "root-canary").stat().st_size == 65536
    assert state.spoiled_canaries(bash, laid) == []


def test_a_changed_and_a_removed_canary_are_each_named(tmp_path):
    """A canary overwritten or deleted by the second run is reported by path."""
    changed, removed, kept = (tmp_path / n for n in ("changed", "removed", "kept"))
    laid = state.lay_canaries(bash, [str(changed), str(removed), str(kept)])

    changed.write_bytes(b"mkfs was here")
    removed.unlink()

    assert state.spoiled_canaries(bash, laid) == [
        f"canary {changed}: changed",
        f"canary {removed}: gone",
    ]


def test_a_missing_block_device_is_left_out_and_an_unwritable_file_is_an_error(tmp_path):
    """/dev/... that does not exist is skipped; a file in a missing folder fails loudly."""
    assert state.lay_canaries(bash, ["/dev/no-such-volume"]) == {}
    with pytest.raises(subprocess.CalledProcessError):
        state.lay_canaries(bash, [str(tmp_path / "no-such-folder" / "canary")])
