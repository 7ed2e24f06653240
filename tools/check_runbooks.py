"""Fail when a runbook carries outputs, lacks exactly one `parameters` cell, or pipes into
`grep -q`: steps run under `set -o pipefail`, and grep -q leaving at its first match can kill
the command before it with SIGPIPE, which fails the pipeline although the text was found.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPED_QUIET_GREP = re.compile(r"(?<!\|)\|\s*grep\s+(-\w*q\w*|--quiet)\b")


def problems(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    found = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        found.append(f"has {len(tagged)} cells tagged 'parameters', needs exactly one")
    if any(c.get("outputs") or c.get("execution_count") for c in code):
        found.append("carries outputs: clear them (executed copies belong in build/)")
    for number, cell in enumerate(code, 1):
        for line in "".join(cell["source"]).splitlines():
            if PIPED_QUIET_GREP.search(line):
                found.append(
                    f"code cell {number} pipes into grep -q (SIGPIPE under pipefail): "
                    f"use grep ... > /dev/null: {line.strip()}"
                )
    return found


def main() -> int:
    failed = 0
    for path in sorted((ROOT / "runbooks").glob("*.ipynb")):
        for problem in problems(path):
            print(f"{path.relative_to(ROOT)}: {problem}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
