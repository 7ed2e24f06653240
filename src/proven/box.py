"""The lab box: built offline by vagrant/box/build.sh, rebuilt only when its recipe changes."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path

from proven import host, sh
from proven.errors import HostError
from proven.guides import ROOT

log = logging.getLogger("proven")

RECIPE = ROOT / "vagrant" / "box"
CACHE = ROOT / ".cache"
VAGRANT_HOME = CACHE / "vagrant.d"
BOX_PREFIX = "proven-debian12"


def recipe_hash() -> str:
    """A digest of every file of the recipe: any change to it means a new box."""
    digest = hashlib.sha256()
    for path in sorted(p for p in RECIPE.rglob("*") if p.is_file()):
        digest.update(path.relative_to(RECIPE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def name() -> str:
    """The box name for the current recipe."""
    return f"{BOX_PREFIX}-{recipe_hash()}"


def box_dir(recipe: str | None = None) -> Path:
    return CACHE / "box" / (recipe or recipe_hash())


def vagrant_env() -> dict[str, str]:
    """Vagrant's environment: its state kept inside the project, not in ~/.vagrant.d."""
    return dict(os.environ, VAGRANT_HOME=str(VAGRANT_HOME), VAGRANT_CHECKPOINT_DISABLE="1")


def installed() -> list[str]:
    """Names of the boxes Vagrant knows in the project's VAGRANT_HOME."""
    out = sh.run(["vagrant", "box", "list", "--machine-readable"], env=vagrant_env())
    return sorted({line.split(",")[3] for line in out.splitlines() if ",box-name," in line})


def build(out: Path) -> Path:
    """Run the recipe; the box file lands in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    log.info("box: building %s from Debian packages (about 2 minutes)", name())
    proc = subprocess.run(
        ["bash", str(RECIPE / "build.sh"), str(out)], stdin=subprocess.DEVNULL, check=False
    )
    box_file = out / f"{BOX_PREFIX}.box"
    if proc.returncode != 0 or not box_file.exists():
        raise HostError(
            f"building the box failed (exit {proc.returncode}); its messages are above",
            hint="fix the cause it names, then run `proven box` again",
        )
    return box_file


def ensure() -> dict:
    """Make sure the current box is added to Vagrant; drop boxes of older recipes."""
    wanted = name()
    boxes = installed()
    if wanted not in boxes:
        box_file = box_dir() / f"{BOX_PREFIX}.box"
        if not box_file.exists():
            build(box_dir())
        log.info("box: adding %s to Vagrant", wanted)
        sh.run(
            ["vagrant", "box", "add", "--force", "--name", wanted, str(box_file)], env=vagrant_env()
        )
    else:
        log.info("box: %s is current (recipe unchanged)", wanted)
    for old in boxes:
        if old.startswith(BOX_PREFIX) and old != wanted:
            log.info("box: removing %s (built from an older recipe)", old)
            sh.run(
                ["vagrant", "box", "remove", "--force", "--all", old],
                env=vagrant_env(),
                check=False,
            )
            remove_pool_copies(old)
    remove_pool_copies(wanted, keep=pool_copy(wanted))
    box_file = box_dir() / f"{BOX_PREFIX}.box"
    size = box_file.stat().st_size if box_file.exists() else 0
    return {"name": wanted, "recipe": recipe_hash(), "size_mib": round(size / 2**20, 1)}


def pool_copy(box: str) -> str:
    """The volume name vagrant-libvirt gives its copy of ``box`` (version 0: by mtime)."""
    image = VAGRANT_HOME / "boxes" / box / "0" / "libvirt" / "box.img"
    return f"{box}_vagrant_box_image_0_{int(image.stat().st_mtime)}_box.img"


def remove_pool_copies(box: str, keep: str = "") -> None:
    """Delete the copies vagrant-libvirt made of ``box`` in the storage pool, but ``keep``."""
    vols = host.virsh("vol-list", host.POOL, "--name", check=False).split()
    for vol in vols:
        if vol.startswith(box + "_vagrant_box_image") and vol != keep:
            log.info("box: deleting stale pool copy %s", vol)
            host.virsh("vol-delete", vol, "--pool", host.POOL, check=False)
