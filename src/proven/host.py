"""Host preparation: the packages, network namespace and daemons the lab VM needs.

This machine has no systemd as PID 1 and no network but Debian's mirror, so the project
starts its own libvirtd and virtlogd, inside a network namespace of its own: the VM's
management network, its dnsmasq and NAT rules then exist only there and never touch the
host's network. Everything that talks to the VM (vagrant, ssh, testinfra) runs inside it.
Preparation is safe to repeat; ``teardown`` undoes it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from proven import sh
from proven.errors import HostError
from proven.guides import ROOT

log = logging.getLogger("proven")

NETNS = "proven"
RUN_DIR = Path("/run/proven")
POOL = "default"
POOL_PATH = Path("/var/lib/libvirt/images")
DAEMONS = ("virtlogd", "libvirtd")  # virtlogd first: libvirtd hands it QEMU's console logs
LIBVIRT_URI = "qemu:///system"
# Left by `verify --keep` when that run started the daemons: `proven destroy` stops them.
KEPT = RUN_DIR / "kept-by-verify"


def package_list() -> list[str]:
    """The host packages named in vagrant/*-packages.txt (comments and blanks skipped)."""
    names: list[str] = []
    for path in sorted((ROOT / "vagrant").glob("**/host-packages.txt")):
        for line in path.read_text().splitlines():
            name = line.split("#", 1)[0].strip()
            if name and name not in names:
                names.append(name)
    return names


def missing_packages(names: list[str]) -> list[str]:
    """The packages among ``names`` that dpkg does not list as installed."""
    out = sh.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names], check=False)
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [n for n in names if n not in installed]


def ensure_packages(install: bool = True) -> None:
    """Install the host packages that are missing, or say which and how."""
    missing = missing_packages(package_list())
    if not missing:
        log.info("host: all %d packages present", len(package_list()))
        return
    command = "apt-get install -y --no-install-recommends " + " ".join(missing)
    if not install or os.geteuid() != 0:
        raise HostError(
            f"host packages missing: {', '.join(missing)}",
            hint=f"run as root: apt-get update && {command}",
        )
    log.info("host: installing %s (the lab VM needs them)", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        sh.run(["apt-get", "update", "-qq"], env=env)
        sh.run(command.split(), env=env)
    except subprocess.CalledProcessError as exc:
        raise HostError(
            f"installing host packages failed: {exc.stderr.strip()[-400:]}",
            hint=f"fix apt, then run: {command}",
        ) from exc


def in_netns(cmd: list[str]) -> list[str]:
    """``cmd`` run inside the lab's network namespace (unchanged when already there)."""
    if current_netns() == NETNS:
        return cmd
    return ["ip", "netns", "exec", NETNS, *cmd]


def current_netns() -> str:
    """The name of the network namespace this process runs in ('' for the host's)."""
    return sh.run(["ip", "netns", "identify", str(os.getpid())], check=False).strip()


def ensure_netns() -> None:
    """Create the lab's network namespace with loopback up; no uplink on purpose."""
    if NETNS not in sh.run(["ip", "netns", "list"]).split():
        log.info("host: creating network namespace %s (the VM's network lives only there)", NETNS)
        sh.run(["ip", "netns", "add", NETNS])
    sh.run(["ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up"])


def pidfile(daemon: str) -> Path:
    return RUN_DIR / f"{daemon}.pid"


def running_pid(daemon: str) -> int | None:
    """The PID of our ``daemon`` if its pidfile names a live process of that program."""
    try:
        pid = int(pidfile(daemon).read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(cmdline.decode()).name == daemon else None


def foreign_daemons(daemon: str) -> list[int]:
    """PIDs of ``daemon`` processes that this project did not start."""
    ours = running_pid(daemon)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == ours:
            continue
        try:
            exe = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if Path(exe).name == daemon:
            found.append(int(proc.name))
    return found


def ensure_daemons() -> None:
    """Start virtlogd and libvirtd inside the namespace unless ours already run."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for daemon in DAEMONS:
        if running_pid(daemon):
            continue
        others = foreign_daemons(daemon)
        if others:
            # Shortcoming: a host whose own libvirtd runs (systemd hosts) is not used; sharing
            # it would put the VM's network outside our namespace. Lifting it needs a
            # session-mode libvirt URI per project (issue 6 asks for no leaks either way).
            raise HostError(
                f"{daemon} is already running (pid {', '.join(map(str, others))}) "
                "and was not started by this project",
                hint=f"stop it (systemctl stop {daemon}) so the lab can run its own",
            )
        log.info("host: starting %s in namespace %s", daemon, NETNS)
        sh.run(["ip", "netns", "exec", NETNS, daemon, "-d", "-p", str(pidfile(daemon))])
    wait_for_libvirt()


def wait_for_libvirt(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh.ok(["virsh", "-c", LIBVIRT_URI, "version"]):
            return
        time.sleep(0.5)
    raise HostError(
        f"libvirtd did not answer on {LIBVIRT_URI} within {timeout:.0f} s",
        hint="look at libvirtd's messages in the system log, then run `proven host teardown`",
    )


def virsh(*args: str, check: bool = True) -> str:
    return sh.run(["virsh", "-c", LIBVIRT_URI, "-q", *args], check=check)


def ensure_pool() -> None:
    """Define and start the 'default' directory pool vagrant-libvirt puts volumes in."""
    if POOL not in virsh("pool-list", "--all", "--name").split():
        log.info("host: defining storage pool %s at %s", POOL, POOL_PATH)
        POOL_PATH.mkdir(parents=True, exist_ok=True)
        virsh("pool-define-as", POOL, "dir", "--target", str(POOL_PATH))
    if POOL not in virsh("pool-list", "--name").split():
        virsh("pool-start", POOL)


def prepare(install: bool = True) -> None:
    """Everything the lab needs on the host; quick when it is already in place."""
    if os.geteuid() != 0:
        raise HostError("the lab needs root (libvirtd, network namespaces)", hint="run as root")
    ensure_packages(install=install)
    ensure_netns()
    ensure_daemons()
    ensure_pool()


def stop_daemons() -> None:
    """Stop the daemons this project started, by their PIDs; nothing else."""
    for daemon in reversed(DAEMONS):
        pid = running_pid(daemon)
        if not pid:
            continue
        log.info("host: stopping %s (pid %d)", daemon, pid)
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        pidfile(daemon).unlink(missing_ok=True)


def teardown() -> None:
    """Undo ``prepare``: stop our daemons and remove the namespace (packages stay)."""
    stop_daemons()
    KEPT.unlink(missing_ok=True)
    # libvirtd leaves the management network's dnsmasq running when it stops.
    for pid in netns_pids():
        log.info("host: stopping pid %d left in namespace %s", pid, NETNS)
        os.kill(pid, signal.SIGTERM)
    if NETNS in sh.run(["ip", "netns", "list"], check=False).split():
        log.info("host: removing network namespace %s", NETNS)
        sh.run(["ip", "netns", "delete", NETNS])


def netns_pids() -> list[int]:
    """PIDs of processes running inside our namespace (they were all started by us)."""
    out = sh.run(["ip", "netns", "pids", NETNS], check=False)
    return [int(p) for p in out.split() if p.isdigit()]
