"""The verification report: what one verify run proved, machine-readable.

Written to ``build/report.json`` at the end of every verify run, also when it fails.
The site reads it to decide what each guide page may claim. Field meanings are listed
in README.md; outcomes always use the vocabulary in ``OUTCOMES``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = 1

# One vocabulary for every outcome: logs, report, site badges. Only runbooks and checks pass;
# a phase that proves nothing of a guide (host, box, VM up, reboot, ...) is merely done, so a
# failed run's summary has no "passed" in it but the guides and checks that really passed.
PASSED, FAILED, SKIPPED, NOT_RUN, CARRIED = "passed", "failed", "skipped", "not run", "carried over"
DONE = "done"
OUTCOMES = (PASSED, FAILED, SKIPPED, NOT_RUN, CARRIED, DONE)


def now() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Check:
    """One testinfra check and its outcome."""

    name: str
    outcome: str
    stage: str  # when it ran: "after runbook", "after reboot", ...
    message: str = ""


@dataclass
class Phase:
    """One timed phase of the run (host, box, VM up, a runbook, checks, site, destroy)."""

    name: str
    outcome: str
    duration_s: float
    detail: str = ""


@dataclass
class RunbookReport:
    """What happened to one runbook in this run."""

    slug: str
    title: str
    outcome: str = NOT_RUN
    duration_s: float = 0.0
    steps: int = 0
    steps_run: int = 0
    failed_step: str = ""
    error: str = ""
    parameters: dict = field(default_factory=dict)
    executed_notebook: str = ""
    checks: list[Check] = field(default_factory=list)
    measurements: dict = field(default_factory=dict)
    # Digest of the runbook's inputs (see inputs.py); equal digests, equal result.
    inputs: str = ""
    # Set when the outcome was carried over from an earlier passing run: that run's date
    # and the commit it ran at.
    carried_from: str = ""
    carried_commit: str = ""

    @property
    def checks_passed(self) -> int:
        return sum(c.outcome == PASSED for c in self.checks)

    @property
    def checks_failed(self) -> int:
        return sum(c.outcome == FAILED for c in self.checks)


@dataclass
class Report:
    """The whole run."""

    started: str = field(default_factory=now)
    finished: str = ""
    outcome: str = NOT_RUN
    error: str = ""
    commit: str = ""
    commit_dirty: bool = False
    host: dict = field(default_factory=dict)
    box: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    runbooks: list[RunbookReport] = field(default_factory=list)
    schema: int = SCHEMA

    def runbook(self, slug: str) -> RunbookReport | None:
        return next((r for r in self.runbooks if r.slug == slug), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        for rb, raw in zip(self.runbooks, data["runbooks"], strict=True):
            raw["checks_passed"] = rb.checks_passed
            raw["checks_failed"] = rb.checks_failed
        return data

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a report."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        data = dict(data)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"report schema {data.get('schema')!r} is not {SCHEMA}")
        data["phases"] = [Phase(**p) for p in data.get("phases", [])]
        runbooks = []
        for raw in data.get("runbooks", []):
            raw = {k: v for k, v in raw.items() if k not in ("checks_passed", "checks_failed")}
            raw["checks"] = [Check(**c) for c in raw.get("checks", [])]
            runbooks.append(RunbookReport(**raw))
        data["runbooks"] = runbooks
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> Report | None:
        """The report at ``path``, or None when there is none."""
        if not path.exists():
            return None
        return cls.from_dict(json.loads(path.read_text()))
