"""What a runbook's result depends on, as one digest: unchanged inputs, unchanged result.

verify carries a passing result over to the next run when the digest is the same, instead
of booting a VM to prove it again (issue 7). The inputs: the runbook, its checks and the
checks' shared fixtures, the files of this project it ships onto its target, the box
recipe, the Vagrantfile and the VM settings it reads from the environment, the parameters and
number of disks, whether the runbook is run a second time, and the same for every guide it
needs.
"""

from __future__ import annotations

import hashlib
import json
import os

from proven import box
from proven.guides import ROOT, Guide, by_slug
from proven.runbook import shipped_files

SHARED = (ROOT / "vagrant" / "Vagrantfile", ROOT / "tests" / "checks" / "conftest.py")
# What the Vagrantfile takes from the environment that can change a runbook's result.
VM_SETTINGS = ("PROVEN_CPUS", "PROVEN_MEMORY", "PROVEN_DISK_CACHE", "PROVEN_DISK_SIZE")


def digest(guide: Guide, parameters: dict, disks: int, second_run: bool = True) -> str:
    """A digest of everything that decides whether ``guide`` passes."""
    h = hashlib.sha256()
    h.update(box.recipe_hash().encode())
    settings = {
        "parameters": parameters,
        "disks": disks,
        "second run": second_run,
        "vm": {name: os.environ.get(name, "") for name in VM_SETTINGS},
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    shipped = [source for _, source in shipped_files(guide.runbook)]
    for path in (guide.runbook, guide.checks, *SHARED, *shipped):
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes() if path.exists() else b"(missing)")
    for need in guide.needs:
        needed = by_slug(need)
        needed_parameters = {**needed.lab_parameters, **parameters}
        h.update(digest(needed, needed_parameters, disks, second_run).encode())
    return h.hexdigest()[:16]
