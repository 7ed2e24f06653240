"""Turn the last verify report into build/benchmark.json and a table: seconds per phase."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    report = json.loads((ROOT / "build" / "report.json").read_text())
    figures = {
        "commit": report["commit"],
        "date": report["finished"],
        "accel": report["host"].get("accel"),
        "memory_mib": report["host"].get("memory_mib"),
        "phases": {p["name"]: p["duration_s"] for p in report["phases"]},
        "runbooks": {r["slug"]: r["duration_s"] for r in report["runbooks"]},
        "total_s": round(sum(p["duration_s"] for p in report["phases"]), 1),
    }
    (ROOT / "build" / "benchmark.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{'phase':<40} {'seconds':>8}")
    for name, seconds in figures["phases"].items():
        print(f"{name:<40} {seconds:>8.1f}")
    print(f"{'total':<40} {figures['total_s']:>8.1f}")
    print(f"memory in use on the host (MiB): {figures['memory_mib']}")
    print("written: build/benchmark.json")
    return 0 if report["outcome"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
