"""The built site as a reader's browser shows it: home, navigation, search, a guide, the report.

Two sites are built with ``mkdocs build --strict`` from a copy of mkdocs.yml, docs/ and the
runbooks, made a git checkout of its own: one with a made-up but schema-valid report that
passes every runbook on that checkout's commit, one without any report. Both are served by
``python -m http.server`` on 127.0.0.1 and read with Debian's Chromium. Screenshots go to
build/test-artifacts/browser/.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from proven.guides import GUIDES, Guide
from proven.report import PASSED, Check, Phase, Report, RunbookReport
from proven.site import nav_title

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
STORAGE = "01-storage"
# A web-stack guide with a then-and-now tab set and pitfalls in admonitions.
WEB_STACK = "03-apache-fcgid"
WITH_REPORT, WITHOUT_REPORT = "with-report", "without-report"
# Cells that are no step of the runbook: its parameters and those papermill injects.
PLUMBING = {"parameters", "injected-parameters"}
# What the made-up run printed for `cat /proc/mdstat`: the test looks for it on the page.
MDSTAT = """\
Personalities : [raid1]
md2 : active raid1 vdc3[1] vdb3[0]
      572416 blocks super 1.2 [2/2] [UU]
md1 : active raid1 vdc2[1] vdb2[0]
      327680 blocks super 1.2 [2/2] [UU]
md0 : active raid1 vdc1[1] vdb1[0]
      130048 blocks super 1.2 [2/2] [UU]

unused devices: <none>
"""
MEASUREMENT = {
    "name": "array-write",
    "unit": "MiB/s",
    "title": "Sequential writes (made-up numbers of the browser test)",
    "series": {"one disk": [181.0, 176.5, 184.2], "RAID1 md2": [172.4, 169.9, 175.0]},
}


# ---------------------------------------------------------------------------------------------
# Building the two sites


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=browser test", "-c", "user.email=test@localhost", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def site_sources(dest: Path) -> str:
    """mkdocs.yml, docs/ and the guides' runbooks in ``dest``, committed; returns the commit."""
    dest.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    generated = shutil.ignore_patterns("[0-9][0-9]-*.ipynb", "report.md", "plots", "__pycache__")
    shutil.copytree(ROOT / "docs", dest / "docs", ignore=generated)
    (dest / "runbooks").mkdir()
    for guide in GUIDES:
        shutil.copy(guide.runbook, dest / "runbooks" / guide.runbook.name)
    # The badge vouches only for a commit: give the copy one of its own.
    git(dest, "init", "--quiet", "--initial-branch=main")
    git(dest, "add", ".")
    git(dest, "commit", "--quiet", "-m", "site sources for the browser test")
    return git(dest, "rev-parse", "HEAD")


def executed_copy(guide: Guide) -> nbformat.NotebookNode:
    """The guide's runbook as papermill would leave it: parameters injected, outputs filled."""
    nb = nbformat.read(guide.runbook, as_version=4)
    steps = [
        c
        for c in nb.cells
        if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
    ]
    for n, step in enumerate(steps, 1):
        step.execution_count = n
        step.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"step {n} done\n")]
    mdstat = next((c for c in steps if "/proc/mdstat" in c.source), steps[-1])
    mdstat.outputs = [nbformat.v4.new_output("stream", name="stdout", text=MDSTAT)]
    injected = nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in guide.lab_parameters.items())
    )
    injected.metadata["tags"] = ["injected-parameters"]
    at = next(
        (i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), 0
    )
    nb.cells.insert(at, injected)
    return nb


def check_names(guide: Guide) -> list[str]:
    """The test functions of the guide's checks module, as a real run would list them."""
    if not guide.checks.exists():
        return ["test_the_guide_worked"]
    tree = ast.parse(guide.checks.read_text())
    return [
        f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")
    ]


def passing_report(commit: str, proof: Path) -> Path:
    """A report on ``commit`` in which every runbook passed, with executed notebooks beside it."""
    runbooks = []
    for guide in GUIDES:
        nb = executed_copy(guide)
        # Left empty, executed_notebook means "executed/<slug>.ipynb next to the report".
        (proof / "executed").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, proof / "executed" / f"{guide.slug}.ipynb")
        steps = sum(
            c.cell_type == "code" and not PLUMBING.intersection(c.metadata.get("tags", []))
            for c in nb.cells
        )
        runbooks.append(
            RunbookReport(
                slug=guide.slug,
                title=guide.title,
                outcome=PASSED,
                duration_s=294.2,
                steps=steps,
                steps_run=steps,
                parameters=dict(guide.lab_parameters),
                checks=[Check(name, PASSED, "after runbook") for name in check_names(guide)],
                measurements={MEASUREMENT["name"]: MEASUREMENT} if guide.slug == STORAGE else {},
            )
        )
    report = Report(
        started="2025-03-01T10:00:00Z",
        finished="2025-03-01T10:08:00Z",
        outcome=PASSED,
        commit=commit,
        host={"os": "Debian GNU/Linux 12 (bookworm)", "accel": "qemu"},
        box={"name": "proven-debian12-browsertest"},
        tools={"mkdocs": "1.6.1"},
        phases=[Phase("VM up", PASSED, 79.1)]
        + [Phase(f"runbook {g.slug}", PASSED, 294.2) for g in GUIDES],
        runbooks=runbooks,
    )
    path = proof / "report.json"
    report.write(path)
    return path


def mkdocs_build(sources: Path, out: Path, report: Path) -> subprocess.Popen:
    env = dict(os.environ, PROVEN_REPORT=str(report), NO_MKDOCS_2_WARNING="1")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    return subprocess.Popen(
        command, cwd=sources, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> Path:
    """Both sites, built side by side: ``with-report/`` and ``without-report/``."""
    for slug in (STORAGE, WEB_STACK):
        assert slug in {g.slug for g in GUIDES}, f"these tests read guide {slug}: update them"
    work = tmp_path_factory.mktemp("site")
    served = work / "served"
    builds = {}
    try:
        for name in (WITH_REPORT, WITHOUT_REPORT):
            commit = site_sources(work / name)
            report = (
                passing_report(commit, work / "proof")
                if name == WITH_REPORT
                else work / "proof" / "no-report.json"
            )
            builds[name] = mkdocs_build(work / name, served / name, report)
        errors = {name: proc.communicate(timeout=120)[1] for name, proc in builds.items()}
    finally:
        for proc in builds.values():  # a build left running after a failure: end it
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for name, proc in builds.items():
        assert proc.returncode == 0, f"mkdocs build {name} failed:\n{errors[name]}"
        assert "WARNING" not in errors[name], f"mkdocs build {name} warned:\n{errors[name]}"
    return served


@pytest.fixture(scope="module")
def site_url(sites, serve) -> str:
    return serve(sites)


def shoot(page, artifacts: Path, name: str, **options) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), **options)


def assert_loaded(image) -> None:
    """The image was fetched and decodes to a picture."""
    image.scroll_into_view_if_needed()
    image.evaluate("img => img.decode()")  # rejects, and so raises, on a broken image
    assert image.evaluate("img => img.naturalWidth") > 0


# ---------------------------------------------------------------------------------------------
# The pages


def test_home_page_loads_and_names_the_project(page, site_url, artifacts):
    """The home page answers and says whose site it is, in the title and the heading."""
    response = page.goto(f"{site_url}{WITH_REPORT}/")

    assert response.ok
    assert "Proven runbooks" in page.title()
    assert page.locator("article h1").first.inner_text().startswith("Proven runbooks")
    shoot(page, artifacts, "home")


def test_navigation_lists_every_guide_with_its_number(page, site_url):
    """The sidebar holds each guide of GUIDES, numbered, linking to its page."""
    page.goto(f"{site_url}{WITH_REPORT}/")

    links = page.locator("nav.md-nav--primary a.md-nav__link")
    found = {" ".join(a.inner_text().split()): a.get_attribute("href") for a in links.all()}

    for guide in GUIDES:
        title = nav_title(guide)
        assert title.startswith(f"{int(guide.slug[:2])}. ")  # the slug's number, gaps allowed
        assert title in found, f"{title!r} not in the navigation: {list(found)}"
        assert found[title].rstrip("/").endswith(f"guides/{guide.slug}")


def test_search_finds_mdadm_in_the_storage_guide(page, site_url, artifacts):
    """Typing "mdadm" into the search box offers the storage guide among the results."""
    page.goto(f"{site_url}{WITH_REPORT}/")

    page.locator("input.md-search__input").click()
    page.keyboard.type("mdadm", delay=20)
    hit = page.locator(f'.md-search-result__item a[href*="guides/{STORAGE}/"]').first
    hit.wait_for()

    assert "mdadm" in hit.inner_text().lower()
    shoot(page, artifacts, "search-mdadm")


def test_storage_guide_shows_executed_output_and_a_passed_badge(page, site_url, artifacts):
    """With a passing report on this commit the guide shows its run's output and says passed."""
    page.goto(f"{site_url}{WITH_REPORT}/guides/{STORAGE}/")

    badge = page.locator(".proven-badge").first
    assert badge.locator(".proven-badge__label").inner_text().lower() == "passed"
    assert "proven-badge--passed" in badge.get_attribute("class")
    assert "checks" in badge.inner_text() and "passed" in badge.inner_text()
    outputs = page.locator(".jp-OutputArea-output pre").all_inner_texts()
    assert any("md0 : active raid1" in text for text in outputs), outputs
    shoot(page, artifacts, "guide-storage-passed")
    shoot(page, artifacts, "guide-storage-passed-full", full_page=True)


def test_storage_guide_shows_its_measurements_as_plot_and_table(page, site_url, artifacts):
    """The Verification section carries the measurement's plot, loaded, and its numbers."""
    page.goto(f"{site_url}{WITH_REPORT}/guides/{STORAGE}/")

    plot = page.locator("img.proven-plot")

    assert_loaded(plot)
    table = page.locator("table", has_text="Median").inner_text()
    assert re.search(r"one disk\s+181\s+176\s+184\s+3", table), table
    shoot(page, artifacts, "guide-storage-measurements")
    # The dark scheme, by its switch in the header; the choice is kept per site, so undo it.
    page.locator("[data-md-component=palette] label:visible").click()
    plot.scroll_into_view_if_needed()
    shoot(page, artifacts, "guide-storage-measurements-dark")
    page.evaluate("localStorage.clear()")


def test_web_stack_guide_switches_between_then_and_now(page, site_url, artifacts):
    """The then-and-now tab set shows the original post; a click on "Now" shows today's names."""
    from playwright.sync_api import expect

    page.goto(f"{site_url}{WITH_REPORT}/guides/{WEB_STACK}/")
    tabs = page.locator(".tabbed-set", has=page.locator("label", has_text="Then")).first
    then_tab, now_tab = tabs.locator(".tabbed-block").nth(0), tabs.locator(".tabbed-block").nth(1)

    expect(tabs).to_be_visible()
    labels = [t.strip() for t in tabs.locator(".tabbed-labels label").all_inner_texts()]
    assert labels == ["Then (the original post)", "Now (Debian 12)"]
    expect(then_tab).to_be_visible()
    expect(now_tab).to_be_hidden()
    shoot(page, artifacts, "guide-web-stack-then")
    tabs.locator(".tabbed-labels label").nth(1).click()
    expect(now_tab).to_be_visible()
    expect(then_tab).to_be_hidden()
    expect(now_tab.locator("table")).to_contain_text("MaxRequestWorkers")
    page.wait_for_timeout(400)  # material slides the tab's underline over: let it arrive
    shoot(page, artifacts, "guide-web-stack-now")
    # content.tabs.link remembers the chosen tab for the whole site: forget it again.
    page.evaluate("localStorage.clear()")


def test_web_stack_guide_shows_pitfalls_as_styled_admonitions(page, site_url, artifacts):
    """A pitfall is a warning admonition with its title, in material's warning colour."""
    from playwright.sync_api import expect

    page.goto(f"{site_url}{WITH_REPORT}/guides/{WEB_STACK}/")
    warning = page.locator(".admonition.warning", has_text="No Apache PHP module")

    expect(warning).to_be_visible()
    expect(warning.locator(".admonition-title")).to_have_text("No Apache PHP module")
    expect(warning).to_contain_text("libapache2-mod-php8.2")
    # Material draws a warning's border in its orange; unstyled, it would have no border.
    assert warning.evaluate("e => getComputedStyle(e).borderLeftColor") == "rgb(255, 145, 0)"
    warning.scroll_into_view_if_needed()
    shoot(page, artifacts, "guide-web-stack-admonition")


def test_search_finds_text_inside_a_tab(page, site_url):
    """Text that lives only in a then-and-now tab is found by the site's search."""
    page.goto(f"{site_url}{WITH_REPORT}/")

    page.locator("input.md-search__input").click()
    page.keyboard.type("starved", delay=20)
    # search.highlight puts ?h=... between the page and the section's anchor.
    link = f'a[href*="guides/{WEB_STACK}/"][href$="#then-and-now"]'
    hit = page.locator(f".md-search-result__item {link}").first
    hit.wait_for()

    assert "starved" in hit.inner_text().lower()


def test_storage_guide_without_a_report_says_not_verified(page, site_url, artifacts):
    """Without a report the guide says not verified, says why, and shows no output."""
    page.goto(f"{site_url}{WITHOUT_REPORT}/guides/{STORAGE}/")

    badge = page.locator(".proven-badge").first
    assert badge.locator(".proven-badge__label").inner_text().lower() == "not verified"
    assert "no verification report" in badge.inner_text()
    assert page.locator(".jp-OutputArea-output pre", has_text="md0 : active").count() == 0
    assert page.locator("img.proven-plot").count() == 0
    shoot(page, artifacts, "guide-storage-not-verified")


@pytest.mark.parametrize("build", [WITH_REPORT, WITHOUT_REPORT])
def test_report_page_lists_every_runbook(page, site_url, artifacts, build):
    """The report page has a row and a section for each runbook in GUIDES."""
    page.goto(f"{site_url}{build}/report/")

    table = page.locator("table", has_text="Checks passed").inner_text()
    for guide in GUIDES:
        title = nav_title(guide)
        assert title in table
        assert page.locator(f'h3[id="{guide.slug}"]').inner_text().startswith(title)
    if build == WITH_REPORT:
        assert re.search(r"\bpassed\b", table)
        assert_loaded(page.locator("img.proven-plot"))
    else:
        assert "No verification report" in page.locator(".admonition").first.inner_text()
    shoot(page, artifacts, f"report-{build}", full_page=True)
