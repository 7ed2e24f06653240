"""Measure each speed saving of the lab on its own: switch one off, time the storage guide.

The storage guide is the one dominated by what the savings target: package configuration
(dpkg, triggers) and initramfs rebuilds inside the emulated VM. Each variant is a full
`proven verify 01-storage --force --no-second-run --no-site` on a fresh VM with exactly one
saving undone, either through the Vagrantfile's environment or by a small runbook in
tools/savings/ that runs before the guide. Writes build/savings.json and prints a table.

The snapshot of the VM after the base packages, for development runs, is not built: the
last variant measures what it could save the storage guide at most, by installing the
guide's packages before it (a snapshot's revert would cost some of that back). Not measured:
man-db's triggers (the box has no man-db to trigger: its offline repository would need
it and its dependencies to measure them).

Takes about five minutes a variant here (TCG, 2 cores). Run it with `nox -s savings`, or
`python tools/savings.py 1 3` for the baseline and the third variant only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNDO = ROOT / "tools" / "savings"

# name, environment for the Vagrantfile, runbook run inside the VM before the guide (to undo
# a saving, or to stand in for one not built)
VARIANTS = [
    ("every saving on (baseline)", {}, None),
    ("dpkg with fsync (no force-unsafe-io)", {}, "undo-unsafe-io"),
    ("initramfs with MODULES=most", {}, "undo-modules-dep"),
    ("initramfs at zstd's default level, not 1", {}, "undo-zstd-level"),
    ("disks with QEMU's default cache", {"PROVEN_DISK_CACHE": "default"}, None),
    ("1 vCPU instead of 2", {"PROVEN_CPUS": "1"}, None),
    ("base packages already in place (as a snapshot would have them)", {}, "preinstall-base"),
]


def measure(env: dict[str, str], undo: str | None) -> dict:
    """One verify of the storage guide; the seconds of its phases, or why it failed."""
    cmd = [sys.executable, "-m", "proven", "verify", "01-storage", "--force", "--no-site"]
    cmd += ["--no-second-run"]
    if undo:
        cmd += ["--runbook", str(UNDO / f"{undo}.ipynb")]
    proc = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL, check=False
    )
    report = json.loads((ROOT / "build" / "report.json").read_text())
    phases = {p["name"]: p["duration_s"] for p in report["phases"]}
    return {
        "outcome": "passed" if proc.returncode == 0 else "failed",
        "vm_up_s": phases.get("VM up"),
        "storage_s": phases.get("runbook 01-storage"),
    }


def main(argv: list[str]) -> int:
    """Run every variant, or those whose numbers (1 = baseline) are given."""
    chosen = [VARIANTS[int(n) - 1] for n in argv] if argv else VARIANTS
    results = []
    for name, env, undo in chosen:
        print(f"== {name}", flush=True)
        results.append({"variant": name, "env": env, "undo": undo, **measure(env, undo)})
    base = results[0]["storage_s"] if chosen[0] is VARIANTS[0] else None
    print(f"\n{'variant':<62} {'VM up s':>8} {'storage s':>10} {'vs baseline':>12}")
    for r in results:
        delta = f"{r['storage_s'] - base:+.1f}" if r["storage_s"] and base else "-"
        up, storage = r["vm_up_s"] or "-", r["storage_s"] or "-"
        print(f"{r['variant']:<62} {up:>8} {storage:>10} {delta:>12}")
        if r["outcome"] != "passed":
            print(f"  ({r['outcome']}: see the log above)")
    out = ROOT / "build" / "savings.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return 0 if all(r["outcome"] == "passed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
