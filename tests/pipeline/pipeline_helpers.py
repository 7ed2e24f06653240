"""Running `proven` as a user would, and reading what it left: shared by the pipeline tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def proven(*args: str, timeout: float = 3000) -> subprocess.CompletedProcess:
    """Run the `proven` command the way a user would, capturing what it prints."""
    proc = subprocess.run(
        [sys.executable, "-m", "proven", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    # Shown by pytest when a test fails, and kept in CI's log either way.
    print(proc.stdout)
    return proc


def report() -> dict:
    return json.loads((ROOT / "build" / "report.json").read_text())


def lab_leftovers() -> tuple[list[str], list[str]]:
    """Lab domains and volumes anywhere: known to libvirt, on disk, or still running.

    Read from libvirt's own files and /proc too, since a run that stopped libvirtd leaves
    nothing to ask it.
    """
    from proven import host, vm

    domains, volumes = vm.leftovers()
    defined = Path("/etc/libvirt/qemu").glob(f"{vm.PREFIX}*.xml")
    domains += [p.stem for p in defined if p.stem not in domains]
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = proc.read_bytes().split(b"\0")
        except OSError:
            continue
        if args[0].endswith(b"qemu-system-x86_64") and any(
            a.startswith(b"guest=" + vm.PREFIX.encode()) for a in args
        ):
            domains.append(f"running qemu pid {proc.parent.name}")
    volumes += [p.name for p in host.POOL_PATH.glob(f"{vm.PREFIX}*") if p.name not in volumes]
    return domains, volumes


def host_daemons() -> list[str]:
    """The project's daemons running on the host, and its network namespace, if present."""
    from proven import host, sh

    found = [f"{d} pid {host.running_pid(d)}" for d in host.DAEMONS if host.running_pid(d)]
    if host.NETNS in sh.run(["ip", "netns", "list"], check=False).split():
        found.append(f"namespace {host.NETNS}")
    return found
