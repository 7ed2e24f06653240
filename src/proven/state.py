"""What a second run of a runbook must leave as it found it.

Verify runs every runbook twice on the same VM. Around the second run it takes a snapshot of
the machine's state that matters to the guides (arrays, volume groups and volumes, every file
under /etc, /opt, /srv and /var/www, installed packages) and lists what the second run
changed; canaries laid before it (random bytes in files of the guide's filesystems) must
come through unchanged. A runbook that changes any of it on a second run is not safe to
re-run, and that is a bug in the runbook.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

MARK = "@@proven-state "
SECTIONS = {
    "arrays": "mdadm --detail --scan 2>/dev/null | sort",
    "volume groups": "vgs --noheadings -o vg_name,pv_count,lv_count,vg_size 2>/dev/null | sort",
    "logical volumes": "lvs --noheadings -o vg_name,lv_name,lv_size 2>/dev/null | sort",
    # /opt: where software from outside Debian lives (the Funambol guide's server); the lab
    # box's own package repository there is left out. /srv and /var/www: what a web server
    # serves (the web guides' pages and PHP wrapper).
    "files": "find /etc /opt /srv /var/www -xdev -path /opt/proven-repo -prune -o -type f"
    " -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum",
    "packages": "dpkg-query -W -f '${Package} ${Version}\\n' | sort",
}


def script() -> str:
    """A bash script that prints every section, each after a marker line."""
    return "\n".join(f"echo {shlex.quote(MARK + name)}\n{cmd}" for name, cmd in SECTIONS.items())


def parse(text: str) -> dict[str, list[str]]:
    """The script's output as section -> lines (whitespace runs folded)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(MARK):
            current = sections.setdefault(line.removeprefix(MARK), [])
        elif current is not None and line.strip():
            current.append(" ".join(line.split()))
    missing = set(SECTIONS) - set(sections)
    if missing:
        raise ValueError(f"no {', '.join(sorted(missing))} in the machine's state")
    return sections


def differences(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """What changed between two snapshots, one line each; empty when nothing did."""
    found = []
    for name in SECTIONS:
        old, new = before.get(name, []), after.get(name, [])
        if name == "files":
            old_sums = {path: digest for digest, _, path in (x.partition(" ") for x in old)}
            new_sums = {path: digest for digest, _, path in (x.partition(" ") for x in new)}
            for path in sorted(old_sums.keys() | new_sums.keys()):
                if path not in new_sums:
                    found.append(f"{name}: {path} removed")
                elif path not in old_sums:
                    found.append(f"{name}: {path} created")
                elif old_sums[path] != new_sums[path]:
                    found.append(f"{name}: {path} changed")
            continue
        found += [f"{name}: gone: {x}" for x in old if x not in new]
        found += [f"{name}: new: {x}" for x in new if x not in old]
    return found


def snapshot(run: Callable[[str], str]) -> dict[str, list[str]]:
    """The state of the machine that ``run`` (a script -> its output, as root) reaches."""
    return parse(run(script()))


def lay_canaries(run: Callable[[str], str], paths: list[str]) -> dict[str, str]:
    """Write random bytes at each path (read an existing block device); path -> sha256.

    A block device that does not exist (the drill's volume when the drill is off) is left
    out; a file that cannot be written is an error of ``run``.
    """
    script = "set -e\n" + "\n".join(
        f"p={shlex.quote(p)}\n"
        'if [ -b "$p" ]; then sha256sum "$p"\n'
        'elif [ "${p#/dev/}" = "$p" ]; then head -c 65536 /dev/urandom > "$p"; sync "$p";'
        ' sha256sum "$p"\n'
        "fi"
        for p in paths
    )
    return _sums(run(script))


def spoiled_canaries(run: Callable[[str], str], laid: dict[str, str]) -> list[str]:
    """What became of each canary that is not as it was laid; empty when all are intact."""
    script = "\n".join(f"sha256sum {shlex.quote(p)} 2>/dev/null || true" for p in laid)
    now = _sums(run(script))
    return [
        f"canary {path}: {'gone' if path not in now else 'changed'}"
        for path, digest in laid.items()
        if now.get(path) != digest
    ]


def _sums(text: str) -> dict[str, str]:
    """sha256sum's lines as path -> digest."""
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
    return {path.strip(): digest for digest, path in pairs}
