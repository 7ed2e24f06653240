"""Helpers for testinfra checks: failures that say what to do, pointing at the check's line."""

from __future__ import annotations

import pytest


def read_root_file(host, path: str) -> str:
    """The content of a file only root may read; a clear failure when the check lacks sudo."""
    __tracebackhide__ = True
    cmd = host.run("cat %s", path)
    if cmd.rc != 0:
        who = host.check_output("id -un")
        pytest.fail(
            f"cannot read {path} as {who}: {cmd.stderr.strip()}. Files only root may read "
            "need the checks to run with sudo (testinfra --sudo; `proven check` passes it "
            "unless --no-sudo is given)",
            pytrace=False,
        )
    return cmd.stdout
