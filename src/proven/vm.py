"""The lab VM's lifecycle: up, reach, reboot, destroy, and clearing leftovers.

Vagrant runs inside the project's network namespace (see host.py), through python-vagrant.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import vagrant

from proven import box, host, sh
from proven.errors import VMError
from proven.guides import BUILD, ROOT

log = logging.getLogger("proven")

VAGRANT_DIR = ROOT / "vagrant"
STATE = box.CACHE / "vagrant-state"  # Vagrant's per-machine state (its ".vagrant" folder)
SSH_CONFIG = BUILD / "vm" / "ssh_config"
LOG = BUILD / "logs" / "vagrant.log"
PREFIX = "proven_"  # libvirt.default_prefix in the Vagrantfile


class NetnsVagrant(vagrant.Vagrant):
    """python-vagrant, with every vagrant command run inside the lab's namespace."""

    def _make_vagrant_command(self, args):
        return host.in_netns(super()._make_vagrant_command(args))


def settings(disks: int = 2, accel: str | None = None) -> dict[str, str]:
    """The Vagrantfile's inputs for this run."""
    return {
        "PROVEN_BOX": box.name(),
        "PROVEN_DISKS": str(disks),
        "PROVEN_ACCEL": accel or detect_accel(),
        "PROVEN_BOOT_TIMEOUT": os.environ.get("PROVEN_BOOT_TIMEOUT", "600"),
    }


def detect_accel() -> str:
    """'kvm' where hardware virtualisation boots a stock kernel, else 'qemu' (TCG).

    /dev/kvm can exist and still fail to run a stock Debian kernel (it does on the
    machines this project is developed on: QEMU aborts on an MSR), so its presence alone
    proves nothing: the box's own kernel is booted once under KVM and the answer cached.
    ``PROVEN_ACCEL`` overrides the probe.
    """
    forced = os.environ.get("PROVEN_ACCEL")
    if forced:
        if forced not in ("kvm", "qemu"):
            raise VMError(f"PROVEN_ACCEL must be kvm or qemu, not {forced!r}")
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "qemu"
    cache = box.box_dir() / "accel"
    if cache.exists():
        return cache.read_text().strip()
    answer = "kvm" if kvm_boots(box.box_dir()) else "qemu"
    log.info(
        "vm: hardware virtualisation %s",
        "works"
        if answer == "kvm"
        else "does not boot a stock kernel here; using QEMU software emulation (slower)",
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(answer + "\n")
    return answer


def kvm_boots(box_cache: Path, timeout: float = 30) -> bool:
    """Whether the box's kernel gets as far as running init under KVM."""
    kernel, initrd = box_cache / "vmlinuz", box_cache / "initrd.img"
    if not (kernel.exists() and initrd.exists()):
        return False
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "512",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 panic=-1 rdinit=/bin/false",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return False
    # init exiting makes the kernel panic, which -no-reboot turns into a clean QEMU exit.
    return "Attempted to kill init" in proc.stdout


def machine(env: dict[str, str]) -> NetnsVagrant:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(box.vagrant_env(), VAGRANT_DOTFILE_PATH=str(STATE), **env)
    return NetnsVagrant(
        root=str(VAGRANT_DIR),
        env=full_env,
        out_cm=vagrant.make_file_cm(str(LOG)),
        err_cm=vagrant.make_file_cm(str(LOG)),
    )


def up(env: dict[str, str]) -> Path:
    """Create and boot a fresh VM; return its ssh_config path."""
    log.info(
        "vm: booting (accel %s, %s extra disks); log: %s",
        env["PROVEN_ACCEL"],
        env["PROVEN_DISKS"],
        LOG.relative_to(ROOT),
    )
    vm = machine(env)
    try:
        for line in vm.up(provider="libvirt", stream_output=True):
            line = line.rstrip()
            log.debug("vagrant: %s", line)
            with LOG.open("a") as f:
                f.write(line + "\n")
            # Vagrant's own progress lines start with "==> default:"; show those.
            if line.startswith("==> default:"):
                log.info("vm: %s", line.removeprefix("==> default:").strip())
    except subprocess.CalledProcessError as exc:
        raise VMError(
            f"vagrant up failed (exit {exc.returncode}); tail of {LOG.relative_to(ROOT)}:\n"
            + tail(LOG),
            hint="the VM is destroyed unless --keep was given; see the log for the cause",
        ) from exc
    return write_ssh_config(vm)


def write_ssh_config(vm: NetnsVagrant | None = None, env: dict | None = None) -> Path:
    vm = vm or machine(env or {})
    SSH_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    # One shared connection for the many short commands of runbook steps and checks.
    sharing = (
        f"  ControlMaster auto\n  ControlPath {SSH_CONFIG.parent}/%C.sock\n  ControlPersist 120\n"
    )
    SSH_CONFIG.write_text(vm.ssh_config().rstrip() + "\n" + sharing)
    return SSH_CONFIG


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ssh(command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``command`` on the VM as the vagrant user."""
    cmd = host.in_netns(
        [
            "ssh",
            "-F",
            str(SSH_CONFIG),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "default",
            command,
        ]
    )
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def boot_id() -> str:
    try:
        proc = ssh("cat /proc/sys/kernel/random/boot_id", timeout=30)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def reboot(timeout: float = 600) -> float:
    """Reboot the VM and wait until SSH answers from the new boot; return seconds taken."""
    before = boot_id()
    if not before:
        raise VMError("cannot reach the VM over SSH before rebooting it")
    start = time.monotonic()
    log.info("vm: rebooting")
    ssh("sudo systemctl reboot", timeout=30)
    while time.monotonic() - start < timeout:
        time.sleep(5)
        now = boot_id()
        if now and now != before:
            return time.monotonic() - start
    raise VMError(
        f"the VM did not come back within {timeout:.0f} s of a reboot",
        hint="look at the VM's console log; rerun with --keep to log in",
    )


def destroy(env: dict[str, str] | None = None) -> None:
    """Destroy the VM through Vagrant, then make sure libvirt holds nothing of it."""
    if STATE.exists():
        try:
            machine(env or {"PROVEN_BOX": box.name()}).destroy()
        except subprocess.CalledProcessError:
            log.warning("vm: vagrant destroy failed; removing the domain through libvirt")
    clear_leftovers()


def leftovers() -> tuple[list[str], list[str]]:
    """Domains and volumes of lab VMs that libvirt still holds."""
    if not host.running_pid("libvirtd"):
        return [], []
    domains = [
        d
        for d in host.virsh("list", "--all", "--name", check=False).split()
        if d.startswith(PREFIX)
    ]
    volumes = [
        v
        for v in host.virsh("vol-list", host.POOL, "--name", check=False).split()
        if v.startswith(PREFIX)
    ]
    return domains, volumes


def clear_leftovers() -> None:
    """Remove lab domains and volumes (of a crashed run, or after destroy) and Vagrant state."""
    domains, volumes = leftovers()
    for domain in domains:
        log.info("vm: removing leftover domain %s", domain)
        host.virsh("destroy", domain, check=False)
        host.virsh("undefine", domain, "--remove-all-storage", "--nvram", check=False)
    for volume in leftovers()[1]:
        log.info("vm: removing leftover volume %s", volume)
        host.virsh("vol-delete", volume, "--pool", host.POOL, check=False)
    if STATE.exists():
        sh.run(["rm", "-rf", str(STATE)])
    domains, volumes = leftovers()
    if domains or volumes:
        raise VMError(
            f"could not remove lab domains {domains} / volumes {volumes}",
            hint="remove them with virsh, then run again",
        )
