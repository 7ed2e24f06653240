"""Where a runbook runs: the lab VM, this machine, or another machine over SSH."""

from __future__ import annotations

import re
import shlex
import subprocess

from proven import host, vm
from proven.errors import ProvenError
from proven.guides import BUILD
from proven.runbook import Target

SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+)(?::(?P<port>\d+))?/?$")


def parse(spec: str) -> Target:
    """``lab``, ``local`` or ``ssh://[user@]host[:port]`` as a Target."""
    if spec == "lab":
        if not vm.SSH_CONFIG.exists():
            raise ProvenError(
                "no lab VM is up", hint="start one with `proven up` (or `nox -s lab`)"
            )
        return Target(kind="ssh", ssh_config=vm.SSH_CONFIG, netns=host.NETNS)
    if spec == "local":
        return Target(kind="local")
    match = SSH_URL.match(spec)
    if not match:
        raise ProvenError(
            f"target {spec!r} is not lab, local or ssh://[user@]host[:port]",
            hint="e.g. --target ssh://admin@db1.example.org",
        )
    # Host keys are checked as usual: only the throwaway lab VM skips that check.
    config = BUILD / "targets" / f"{match['host']}.ssh_config"
    config.parent.mkdir(parents=True, exist_ok=True)
    lines = ["Host default", f"  HostName {match['host']}"]
    if match["user"]:
        lines.append(f"  User {match['user']}")
    if match["port"]:
        lines.append(f"  Port {match['port']}")
    lines += [
        "  BatchMode yes",
        "  ControlMaster auto",
        f"  ControlPath {config.parent}/%C.sock",
        "  ControlPersist 120",
    ]
    config.write_text("\n".join(lines) + "\n")
    return Target(kind="ssh", ssh_config=config)


def missing_disks(target: Target, parameters: dict) -> list[str]:
    """Disks named in DISK/DISKS-like parameters that are not block devices on the target."""
    disks = [
        d
        for name, value in parameters.items()
        if name == "DISKS" or name.endswith("_DISK")
        for d in str(value).split()
    ]
    if not disks:
        return []
    script = "for d in " + " ".join(map(shlex.quote, disks)) + '; do [ -b "$d" ] || echo "$d"; done'
    if target.kind == "local":
        cmd = ["bash", "-c", script]
    else:
        cmd = ["ssh", "-F", str(target.ssh_config), target.host, script]
        if target.netns:
            cmd = host.in_netns(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ProvenError(
            f"cannot reach the target to check its disks: {proc.stderr.strip()[-300:]}",
            hint="check that `ssh` to it works without a password prompt",
        )
    return proc.stdout.split()
