"""The guides: one runbook, one checks module and one page each, sharing number and slug."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
CHECKS = ROOT / "tests" / "checks"
BUILD = ROOT / "build"


@dataclass(frozen=True)
class Guide:
    """A guide as the pipeline sees it."""

    slug: str  # "01-storage": runbooks/01-storage.ipynb, tests/checks/test_01_storage.py
    title: str
    # Values verify passes instead of the runbook's real-server defaults, sized for the lab VM.
    lab_parameters: dict = field(default_factory=dict)
    # Slugs that must have run on the same VM first.
    needs: tuple[str, ...] = ()
    # Check the machine again after a reboot (for state that must survive one).
    reboot_after: bool = False
    # Paths on the VM (with {PARAMETER}s) that must come through the second run untouched:
    # verify writes a file of random bytes at each, or reads an existing block device's bytes.
    canaries: tuple[str, ...] = ()
    # Where the runbook and its checks live; other folders hold test and draft runbooks.
    runbooks_dir: Path = RUNBOOKS
    checks_dir: Path = CHECKS

    @property
    def runbook(self) -> Path:
        return self.runbooks_dir / f"{self.slug}.ipynb"

    @property
    def checks(self) -> Path:
        return self.checks_dir / f"test_{self.slug.replace('-', '_')}.py"

    @property
    def executed(self) -> Path:
        return BUILD / "executed" / f"{self.slug}.ipynb"


GUIDES = (
    Guide(
        slug="01-storage",
        title="Mirror two disks with mdadm and put LVM on top",
        lab_parameters={
            "DISKS": "/dev/vdb /dev/vdc",
            "BOOT_SIZE": "128M",
            "ROOT_SIZE": "320M",
            "DRILL": "yes",
        },
        reboot_after=True,
        # The new / and /boot, and the drill's canary volume on the data array (which holds
        # no filesystem of its own: its volumes are for guests).
        canaries=(
            "{MOUNT_ROOT}/proven-canary",
            "{MOUNT_ROOT}/boot/proven-canary",
            "/dev/{VG_NAME}/canary",
        ),
    ),
    Guide(
        slug="02-kvm-host",
        title="Run virtual machines on one server: KVM, libvirt, LVM volumes and a bridge",
        lab_parameters={
            # The lab VM's second NIC (see the Vagrantfile); eth0 keeps the SSH connection.
            "BRIDGE_PORT": "eth1",
            "BRIDGE_ADDRESS": "none",
            "GUEST_SIZE": "256M",
            "GUEST_MEMORY": "256",
            "GUEST_BOOT": "host-kernel",
            "BOOT_WAIT": "240",
        },
        needs=("01-storage",),
        reboot_after=True,
    ),
    Guide(
        slug="03-apache-fcgid",
        title="Serve PHP through mod_fcgid on Apache's worker MPM",
    ),
    Guide(
        slug="04-opcache",
        title="Cache compiled PHP with OPcache",
        # Fewer rounds than on a real server: each request is slow under emulation.
        lab_parameters={"ROUNDS": "5", "REQUESTS": "10"},
        needs=("03-apache-fcgid",),
    ),
    Guide(
        slug="05-php-benchmark",
        title="Benchmark PHP: the command line, FastCGI, OPcache and the JIT",
        lab_parameters={"RUNS": "7"},
        needs=("03-apache-fcgid",),
    ),
    Guide(
        slug="06-funambol",
        title="Fix Funambol's sync failure: the server URI must match the clients'",
        # No Funambol server to install: the runbook writes the post's misconfiguration first.
        lab_parameters={"EXAMPLE": "yes", "CLIENT_URL": "http://sync.example.org:8080/funambol/ds"},
    ),
)


def from_path(runbook: Path) -> Guide:
    """A guide for a runbook outside runbooks/ (a draft, a test case); checks sit beside it."""
    runbook = runbook.resolve()
    if not runbook.is_file():
        raise KeyError(f"no runbook at {runbook}")
    return Guide(
        slug=runbook.stem,
        title=runbook.stem,
        runbooks_dir=runbook.parent,
        checks_dir=runbook.parent,
    )


def by_slug(slug: str) -> Guide:
    """The guide called ``slug`` (or its number, ``01``); a clear error otherwise."""
    for guide in GUIDES:
        if slug in (guide.slug, guide.slug.split("-", 1)[0], guide.slug.split("-", 1)[1]):
            return guide
    known = ", ".join(g.slug for g in GUIDES)
    raise KeyError(f"no guide called {slug!r}; known guides: {known}")


def with_needs(slugs: list[str]) -> list[Guide]:
    """The guides named, plus what they depend on, in pipeline order."""
    wanted: set[str] = set()

    def add(slug: str) -> None:
        guide = by_slug(slug)
        if guide.slug not in wanted:
            wanted.add(guide.slug)
            for need in guide.needs:
                add(need)

    for slug in slugs:
        add(slug)
    return [g for g in GUIDES if g.slug in wanted]
