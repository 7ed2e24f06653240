"""Running host commands: logged at DEBUG, failures turned into errors that name the command."""

from __future__ import annotations

import logging
import shlex
import subprocess

log = logging.getLogger("proven")


def run(cmd: list[str], *, check: bool = True, timeout: float | None = None, **kw) -> str:
    """Run ``cmd`` and return its stdout; stderr is kept for the error message."""
    log.debug("$ %s", shlex.join(cmd))
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return proc.stdout


def ok(cmd: list[str], **kw) -> bool:
    """Whether ``cmd`` exits 0 (its output is discarded)."""
    log.debug("$ %s", shlex.join(cmd))
    return (
        subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **kw,
        ).returncode
        == 0
    )
