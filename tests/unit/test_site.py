"""The site's generated pages: badge rules, shadowing guard, page generation, the real build."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from proven import site
from proven.guides import GUIDES, ROOT, Guide
from proven.report import (
    CARRIED,
    FAILED,
    NOT_RUN,
    PASSED,
    SKIPPED,
    Check,
    Phase,
    Report,
    RunbookReport,
)

HEAD = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
SLUG = "01-storage"
GUIDE_A = Guide(slug="01-storage", title="Mirror two disks")
GUIDE_B = Guide(slug="02-network", title="Bridge the network")


def passing_runbook(slug: str = SLUG, **changes) -> RunbookReport:
    rb = RunbookReport(
        slug=slug,
        title="A guide",
        outcome=PASSED,
        duration_s=372.0,
        steps=4,
        steps_run=4,
        checks=[
            Check("test_md0_is_raid1", PASSED, "after runbook"),
            Check("test_vg_exists", PASSED, "after reboot"),
        ],
    )
    return dataclasses.replace(rb, **changes)


def passing_report(*runbooks: RunbookReport, **changes) -> Report:
    report = Report(
        started="2025-03-01T10:00:00Z",
        finished="2025-03-01T10:20:00Z",
        outcome=PASSED,
        commit=HEAD,
        box={"name": "proven/debian-12", "version": "1.2"},
        tools={"vagrant": "2.3.4", "papermill": "2.6.0"},
        phases=[Phase("VM up", PASSED, 95.0), Phase("runbook 01-storage", PASSED, 372.0)],
        runbooks=list(runbooks) or [passing_runbook()],
    )
    return dataclasses.replace(report, **changes)


def with_runbook(**changes) -> Report:
    return passing_report(passing_runbook(**changes))


# ---------------------------------------------------------------------------------------------
# Badge rules


def test_badge_says_passed_when_run_and_checks_all_passed():
    """A runbook that ran every step on this commit with all checks passed shows passed."""
    badge = site.judge(SLUG, passing_report(), HEAD)

    assert badge.verified
    assert (badge.label, badge.tone) == ("passed", "passed")
    assert badge.date == "2025-03-01"
    assert badge.commit == HEAD[:7]
    assert badge.box == "proven/debian-12 1.2"
    assert badge.duration == "6 min 12 s"
    assert badge.checks == "2/2"


def test_badge_accepts_an_abbreviated_commit_in_the_report():
    """A report naming the commit by a 7+ character prefix matches the full HEAD."""
    badge = site.judge(SLUG, passing_report(commit=HEAD[:12]), HEAD)

    assert badge.verified


def test_carried_over_badge_shows_the_original_run_date():
    """A carried-over outcome is trusted and dated by the run that proved it."""
    report = with_runbook(outcome=CARRIED, carried_from="2025-02-14T08:00:00Z")

    badge = site.judge(SLUG, report, HEAD)

    assert badge.verified
    assert badge.label == "carried over"
    assert badge.date == "2025-02-14"
    assert "proven on 2025-02-14, carried over" in site.badge_html(badge)


def test_carried_over_badge_names_the_commit_of_the_run_that_proved_it():
    """The badge of a carried-over guide shows the commit it ran at, not today's."""
    report = with_runbook(
        outcome=CARRIED, carried_from="2025-02-14T08:00:00Z", carried_commit=OTHER
    )

    badge = site.judge(SLUG, report, HEAD)

    assert badge.verified
    assert badge.commit == OTHER[:7]


NOT_VERIFIED_CASES = {
    "no report": (None, HEAD, "no verification report"),
    "other commit": (passing_report(commit=OTHER), HEAD, "report is for commit fedcba9"),
    "dirty tree in report": (passing_report(commit_dirty=True), HEAD, "uncommitted changes"),
    "no git checkout": (passing_report(), None, "not built from a git checkout"),
    "runbook absent": (passing_report(passing_runbook("02-other")), HEAD, "not in the report"),
    "runbook failed": (
        with_runbook(outcome=FAILED, failed_step="3"),
        HEAD,
        "outcome was “failed” at step 3",
    ),
    "runbook not run": (with_runbook(outcome=NOT_RUN), HEAD, "outcome was “not run”"),
    "runbook skipped": (with_runbook(outcome=SKIPPED), HEAD, "outcome was “skipped”"),
    "step not run": (with_runbook(steps_run=3), HEAD, "only 3 of 4 steps ran"),
    "no steps": (with_runbook(steps=0, steps_run=0), HEAD, "no steps were recorded"),
    "failed check": (
        with_runbook(checks=[Check("a", PASSED, "after runbook"), Check("b", FAILED, "x")]),
        HEAD,
        "1 check failed",
    ),
    "skipped checks": (
        with_runbook(checks=[Check("a", SKIPPED, "x"), Check("b", SKIPPED, "x")]),
        HEAD,
        "2 checks skipped",
    ),
    "check not run": (with_runbook(checks=[Check("a", NOT_RUN, "x")]), HEAD, "1 check did not"),
    "no checks": (with_runbook(checks=[]), HEAD, "no checks ran"),
    "carried without date": (with_runbook(outcome=CARRIED), HEAD, "without the date"),
}


@pytest.mark.parametrize(
    ("report", "head", "reason"), NOT_VERIFIED_CASES.values(), ids=NOT_VERIFIED_CASES.keys()
)
def test_badge_says_not_verified_with_its_reason(report, head, reason):
    """Any doubt about the run turns the badge into "not verified" and names the doubt."""
    badge = site.judge(SLUG, report, head)

    assert not badge.verified
    assert badge.label == "not verified"
    assert any(reason in r for r in badge.reasons), badge.reasons
    assert 'proven-badge__label">not verified<' in site.badge_html(badge)


def test_badge_is_not_verified_when_the_run_output_cannot_be_shown():
    """A page without the run's output does not claim the run."""
    badge = site.judge(SLUG, passing_report(), HEAD, notebook_problem="the notebook is gone")

    assert badge.label == "not verified"
    assert badge.reasons == ("the notebook is gone",)


def test_badge_is_not_verified_when_the_runbook_has_local_edits():
    """Uncommitted edits to a runbook are not what the report proved."""
    badge = site.judge(SLUG, passing_report(), HEAD, changes=["runbooks/01-storage.ipynb"])

    assert badge.reasons == ("runbooks/01-storage.ipynb changed since the last commit",)


@pytest.mark.parametrize(
    ("report", "tone"),
    [
        (with_runbook(outcome=FAILED), "failed"),
        (with_runbook(checks=[Check("a", FAILED, "x")]), "failed"),
        (with_runbook(steps_run=1), "unverified"),
        (passing_report(commit=OTHER), "unverified"),
    ],
)
def test_badge_is_red_only_for_a_real_failure(report, tone):
    """Red means something failed; amber means merely unproven."""
    assert site.judge(SLUG, report, HEAD).tone == tone


def test_badge_html_escapes_report_text():
    """Text from the report cannot inject markup into the page."""
    report = with_runbook(outcome=FAILED, failed_step="<script>")

    html = site.badge_html(site.judge(SLUG, report, HEAD))

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


# ---------------------------------------------------------------------------------------------
# Shadowing guard


def test_shadow_guard_names_both_files(tmp_path):
    """A .md and an .ipynb with one stem in one folder fail the build, naming both."""
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "01-storage.md").write_text("# x\n")
    (tmp_path / "guides" / "01-storage.ipynb").write_text("{}")

    with pytest.raises(site.SiteError) as raised:
        site.check_shadows(tmp_path)

    assert str(tmp_path / "guides" / "01-storage.md") in str(raised.value)
    assert str(tmp_path / "guides" / "01-storage.ipynb") in str(raised.value)


def test_shadow_guard_allows_same_stem_in_different_folders(tmp_path):
    """Only files in the same folder compete for a page."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.md").write_text("# x\n")
    (tmp_path / "b.ipynb").write_text("{}")
    (tmp_path / "index.ipynb").write_text("{}")

    assert site.find_shadows(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Page generation


def tiny_notebook(executed: bool = False) -> nbformat.NotebookNode:
    """A bash runbook with a title, a parameters cell and one step."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
    nb.metadata["language_info"] = {"name": "bash"}
    params = nbformat.v4.new_code_cell("DISKS='/dev/sda /dev/sdb'")
    params.metadata["tags"] = ["parameters"]
    step = nbformat.v4.new_code_cell("cat /proc/mdstat")
    if executed:
        step.execution_count = 1
        step.outputs = [nbformat.v4.new_output("stream", name="stdout", text="md0 : active\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny runbook\n\nIt reads mdstat."), params, step]
    return nb


@pytest.fixture
def project(tmp_path) -> Path:
    """A project root with two runbooks, one executed notebook and a passing report."""
    root = tmp_path / "project"
    for guide in (GUIDE_A, GUIDE_B):
        runbook = root / "runbooks" / f"{guide.slug}.ipynb"
        runbook.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(tiny_notebook(), runbook)
    executed = root / "build" / "executed" / f"{GUIDE_A.slug}.ipynb"
    executed.parent.mkdir(parents=True)
    nbformat.write(tiny_notebook(executed=True), executed)
    passing_report().write(root / "build" / "report.json")
    return root


def generate(root: Path, **kwargs) -> list[site.Page]:
    kwargs.setdefault("head", HEAD)
    kwargs.setdefault("guides", (GUIDE_A, GUIDE_B))
    return site.generate(root / "docs", root, root / "build" / "report.json", **kwargs)


def read_page(root: Path, slug: str) -> nbformat.NotebookNode:
    return nbformat.read(root / "docs" / "guides" / f"{slug}.ipynb", as_version=4)


def test_guide_page_uses_the_executed_notebook_with_badge_and_verification(project):
    """A guide that ran gets its real output, a passed badge on top and its checks below."""
    generate(project)

    page = read_page(project, GUIDE_A.slug)
    assert page.cells[0].id == site.BADGE_CELL_ID
    assert "proven-badge--passed" in page.cells[0].source
    assert "checks 2/2 passed" in page.cells[0].source
    assert page.cells[1].source.startswith("# A tiny runbook")
    assert page.cells[3].outputs[0].text == "md0 : active\n"
    verification = page.cells[-1].source
    assert verification.startswith("## Verification")
    assert "| `test_md0_is_raid1` | after runbook |" in verification
    assert "| `test_vg_exists` | after reboot |" in verification
    assert "**Next:** [2. Bridge the network](../../guides/02-network/)" in verification


def test_guide_page_falls_back_to_the_runbook_when_it_did_not_run(project):
    """A runbook absent from the report is shown bare and marked not verified."""
    generate(project)

    page = read_page(project, GUIDE_B.slug)
    assert "not verified" in page.cells[0].source
    assert "this runbook is not in the report" in page.cells[0].source
    assert page.cells[3].outputs == []
    assert "[The verification report](../../report/)" in page.cells[-1].source


def test_guide_page_ignores_a_stale_executed_notebook(project):
    """An executed notebook left from an older run is not shown when this run did not run it."""
    report = with_runbook(outcome=NOT_RUN, steps_run=0, checks=[])
    report.write(project / "build" / "report.json")

    pages = generate(project)

    assert pages[0].source == project / "runbooks" / f"{GUIDE_A.slug}.ipynb"
    assert read_page(project, GUIDE_A.slug).cells[3].outputs == []


def test_guide_page_is_not_verified_when_the_executed_notebook_is_missing(project):
    """A report that says the runbook ran, without its notebook, shows the bare runbook."""
    (project / "build" / "executed" / f"{GUIDE_A.slug}.ipynb").unlink()

    pages = generate(project)

    assert pages[0].source == project / "runbooks" / f"{GUIDE_A.slug}.ipynb"
    assert "executed notebook is missing" in pages[0].badge.reasons[0]


def test_guide_page_shows_the_current_runbook_when_it_changed_after_the_run(project):
    """Edited steps are shown as written now, without the old output, and not verified."""
    runbook = project / "runbooks" / f"{GUIDE_A.slug}.ipynb"
    nb = tiny_notebook()
    nb.cells[2].source = "cat /proc/mdstat\nlsblk"
    nbformat.write(nb, runbook)

    pages = generate(project)

    assert pages[0].source == runbook
    assert "runbook changed after it ran" in pages[0].badge.reasons[0]
    assert read_page(project, GUIDE_A.slug).cells[3].source == "cat /proc/mdstat\nlsblk"


def test_cells_papermill_adds_do_not_count_as_changes(project):
    """The injected parameters and error banners are not edits to the runbook."""
    executed = project / "build" / "executed" / f"{GUIDE_A.slug}.ipynb"
    nb = nbformat.read(executed, as_version=4)
    injected = nbformat.v4.new_code_cell("DISKS='/dev/vdb /dev/vdc'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, injected)
    nbformat.write(nb, executed)

    pages = generate(project)

    assert pages[0].source == executed
    assert pages[0].badge.verified


def test_guide_page_is_not_verified_without_a_report(project):
    """No report means every guide says not verified."""
    (project / "build" / "report.json").unlink()

    pages = generate(project)

    assert [p.badge.label for p in pages if p.badge] == ["not verified", "not verified"]
    assert "no verification report" in read_page(project, GUIDE_A.slug).cells[0].source


def test_pages_are_written_only_when_their_content_changed(project):
    """A second build with the same inputs writes nothing, so mkdocs serve does not loop."""
    generate(project)
    page = project / "docs" / "guides" / f"{GUIDE_A.slug}.ipynb"
    os.utime(page, (1, 1))

    second = generate(project)

    assert not any(p.written for p in second)
    assert page.stat().st_mtime == 1


def test_missing_runbook_fails_the_build_naming_it(project):
    """A guide whose runbook file is missing stops the build with the file's path."""
    missing = project / "runbooks" / f"{GUIDE_B.slug}.ipynb"
    missing.unlink()

    with pytest.raises(site.SiteError, match=re.escape(str(missing))):
        generate(project)


def test_unreadable_report_fails_the_build(project):
    """A report with another schema is an error, not a silent "no report"."""
    (project / "build" / "report.json").write_text('{"schema": 99}')

    with pytest.raises(site.SiteError, match="cannot be read"):
        generate(project)


def test_pages_of_removed_guides_are_deleted(project):
    """A generated page whose guide is gone would break the strict build; it is removed."""
    stale = project / "docs" / "guides" / "09-gone.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")

    generate(project)

    assert not stale.exists()


def test_report_page_lists_run_phases_runbooks_and_checks(project):
    """The report page summarises the run and every runbook's checks."""
    generate(project)

    text = (project / "docs" / "report.md").read_text()
    assert "- **Commit:** `0123456`, the commit this site was built from" in text
    assert "vagrant `2.3.4`" in text
    assert "| VM up |" in text and "1 min 35 s" in text
    assert "[1. Mirror two disks](#01-storage)" in text
    assert "### 1. Mirror two disks {#01-storage}" in text
    assert "### 2. Bridge the network {#02-network}" in text
    assert "| `test_vg_exists` | after reboot |" in text
    assert "This runbook did not take part in the run." in text


def test_report_page_without_a_report_says_so(project):
    """Without a report the page explains how to get one."""
    (project / "build" / "report.json").unlink()

    generate(project)

    text = (project / "docs" / "report.md").read_text()
    assert '!!! warning "No verification report"' in text
    assert "`build/report.json`" in text


def test_report_path_can_be_overridden_from_the_environment(monkeypatch, tmp_path):
    """PROVEN_REPORT points the site at another report."""
    monkeypatch.setenv(site.REPORT_ENV, str(tmp_path / "r.json"))

    assert site.report_path(tmp_path / "root") == tmp_path / "r.json"


def test_report_path_defaults_to_build_report_json(monkeypatch, tmp_path):
    """Without PROVEN_REPORT the report is build/report.json under the root."""
    monkeypatch.delenv(site.REPORT_ENV, raising=False)

    assert site.report_path(tmp_path) == tmp_path / "build" / "report.json"


# ---------------------------------------------------------------------------------------------
# The real site


def test_nav_lists_every_guide_with_its_numbered_title():
    """mkdocs.yml's nav carries each guide of GUIDES, numbered, in order."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    section = next(item["Guides"] for item in config["nav"] if "Guides" in item)
    entries = [item for item in section if isinstance(item, dict)]

    assert entries == [{site.nav_title(g): f"guides/{g.slug}.ipynb"} for g in GUIDES]


def test_guides_index_links_every_guide():
    """The guides section index links each guide's page."""
    text = (ROOT / "docs" / "guides" / "index.md").read_text()

    for guide in GUIDES:
        assert f"]({guide.slug}.ipynb)" in text


def copy_site_sources(dest: Path) -> None:
    """mkdocs.yml and docs/ without generated pages; runbooks real where they exist."""
    shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    generated = shutil.ignore_patterns("[0-9][0-9]-*.ipynb", "report.md", "__pycache__")
    shutil.copytree(ROOT / "docs", dest / "docs", ignore=generated)
    (dest / "runbooks").mkdir()
    for guide in GUIDES:
        real = ROOT / "runbooks" / f"{guide.slug}.ipynb"
        if real.exists():
            shutil.copy(real, dest / "runbooks" / real.name)
        else:  # the runbook is still being written; a stand-in keeps the build testable
            nbformat.write(tiny_notebook(), dest / "runbooks" / real.name)


def build_copy(dest: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the site sources copied to ``dest``, without a report."""
    env = dict(os.environ, PROVEN_REPORT=str(dest / "no-report.json"), NO_MKDOCS_2_WARNING="1")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(dest / "site")]
    return subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True)


def test_mkdocs_build_is_strict_clean_without_a_report(tmp_path):
    """The real mkdocs.yml builds with no warning and every guide says not verified."""
    copy_site_sources(tmp_path)

    done = build_copy(tmp_path)

    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    for guide in GUIDES:
        page = tmp_path / "site" / "guides" / guide.slug / "index.html"
        html = page.read_text()
        assert "proven-badge--unverified" in html
        assert "not verified" in html
        assert (page.parent / f"{guide.slug}.ipynb").exists()
        # Notebook pages bypass mkdocs' link checks: resolve their links here.
        for href in re.findall(r'href="(\.\./[^"#]*|[\w-]+\.ipynb)"', html):
            target = (page.parent / href).resolve()
            assert target.is_file() or (target / "index.html").is_file(), href


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ("[the report](../../nowhere/)", "invalid url - ../../nowhere/"),
        ("[a step](#no-such-step)", "invalid url - #no-such-step"),
        ("[its parameters](../../guides/01-storage/#no-such-anchor)", "no-such-anchor"),
    ],
)
def test_broken_link_on_a_guide_page_fails_the_build_naming_the_page(tmp_path, link, complaint):
    """A dead link or anchor in a runbook's Markdown stops the strict build, page named."""
    copy_site_sources(tmp_path)
    runbook = tmp_path / "runbooks" / "03-apache-fcgid.ipynb"
    nb = nbformat.read(runbook, as_version=4)
    nb.cells[0].source += f"\n\nSee {link}."
    nbformat.write(nb, runbook)

    done = build_copy(tmp_path)

    assert done.returncode != 0
    assert complaint in done.stderr and "guides/03-apache-fcgid.ipynb" in done.stderr


def test_links_to_other_guides_notebooks_point_at_their_pages(project):
    """[text](NN-slug.ipynb) works in Jupyter; on the site it goes to that guide's page."""
    runbook = project / "runbooks" / f"{GUIDE_B.slug}.ipynb"
    nb = nbformat.read(runbook, as_version=4)
    nb.cells[0].source += f"\n\nAfter the [storage guide]({GUIDE_A.slug}.ipynb#parameters)."
    nbformat.write(nb, runbook)

    generate(project)

    cell = read_page(project, GUIDE_B.slug).cells[1]
    assert "[storage guide](../../guides/01-storage/#parameters)" in cell.source
    # The notebook offered for download keeps the link that works in Jupyter.
    assert "[storage guide](01-storage.ipynb#parameters)" in cell.metadata["proven"]["markdown"]


def test_a_link_to_a_notebook_that_is_no_guide_fails_the_build(project):
    """A misspelt guide link stops the build naming the page, the link and the guides there are."""
    runbook = project / "runbooks" / f"{GUIDE_B.slug}.ipynb"
    nb = nbformat.read(runbook, as_version=4)
    nb.cells[0].source += "\n\nAfter the [storage guide](01-storge.ipynb)."
    nbformat.write(nb, runbook)

    with pytest.raises(site.SiteError, match="02-network links to 01-storge.ipynb") as err:
        generate(project)
    assert "01-storage.ipynb, 02-network.ipynb" in err.value.hint


def test_a_link_from_a_markdown_page_to_a_missing_section_of_a_guide_fails(tmp_path):
    """docs/*.md linking a notebook page's section that does not exist stops the build."""
    copy_site_sources(tmp_path)
    home = tmp_path / "docs" / "index.md"
    home.write_text(
        home.read_text() + "\n[ok](guides/01-storage.ipynb#parameters) and"
        " [gone](guides/01-storage.ipynb#no-such-step)\n"
    )

    done = build_copy(tmp_path)

    assert done.returncode != 0
    assert "index.md: link guides/01-storage/#no-such-step finds no section" in done.stderr
    assert "#parameters" not in done.stderr
