"""Running a guide's testinfra checks against a target and collecting their outcomes."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from proven import host
from proven.guides import BUILD, ROOT, Guide
from proven.report import FAILED, PASSED, SKIPPED, Check

log = logging.getLogger("proven")


def run(
    checks: Path,
    stage: str,
    parameters: dict,
    ssh_config: Path | None,
    sudo: bool = True,
    label: str = "",
) -> list[Check]:
    """Run the testinfra module ``checks``; return one Check per test.

    ``ssh_config`` None checks this machine itself (testinfra's local backend).
    """
    label = label or checks.stem
    xml = BUILD / "checks" / f"{label}-{stage.replace(' ', '-')}.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.unlink(missing_ok=True)
    hosts = (
        ["--hosts=local://"]
        if ssh_config is None
        else ["--hosts=ssh://default", f"--ssh-config={ssh_config}"]
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(checks),
        *hosts,
        *(["--sudo"] if sudo else []),
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml}",
        "-q",
        "--no-header",
        f"--rootdir={ROOT}",
        "--override-ini=testpaths=tests/checks",
    ]
    env = dict(os.environ, PROVEN_PARAMETERS=json.dumps(parameters), PROVEN_STAGE=stage)
    if ssh_config is not None:
        cmd = host.in_netns(cmd)
    log.info(
        "checks: %s (%s)",
        checks.relative_to(ROOT) if checks.is_relative_to(ROOT) else checks,
        stage,
    )
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT
    )
    (xml.with_suffix(".log")).write_text(proc.stdout + proc.stderr)
    results = parse_junit(xml, stage) if xml.exists() else []
    if not results:
        # Collection errors leave no test cases: that is a failure, not "0 checks passed".
        results = [
            Check(
                name=f"{checks.name} (collection)",
                outcome=FAILED,
                stage=stage,
                message=(proc.stdout + proc.stderr)[-2000:],
            )
        ]
    for check in results:
        if check.outcome == FAILED:
            log.error("check failed: %s (%s)\n%s", check.name, stage, check.message)
    return results


def run_guide(guide: Guide, stage: str, parameters: dict, ssh_config: Path | None) -> list[Check]:
    return run(guide.checks, stage, parameters, ssh_config, label=guide.slug)


def parse_junit(xml: Path, stage: str) -> list[Check]:
    """One Check per <testcase> of a pytest JUnit XML file."""
    checks = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name", "?")
        outcome, message = PASSED, ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = FAILED
                message = (child.get("message") or "") + "\n" + (child.text or "")
            elif child.tag == "skipped":
                outcome, message = SKIPPED, child.get("message") or ""
        # testinfra puts the host first in the test id: "test_x[ssh://default-md0]".
        name = re.sub(r"\[\w+://[^-\]]*-?", "[", name).replace("[]", "")
        checks.append(Check(name=name, outcome=outcome, stage=stage, message=message.strip()))
    return checks
