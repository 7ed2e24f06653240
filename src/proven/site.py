"""The site's generated pages: each guide's notebook with its status badge, and the report page.

``docs/hooks.py`` calls :func:`generate` before every mkdocs build. For each guide it writes
``docs/guides/NN-slug.ipynb`` from the executed notebook of the last verify run (or from the
bare runbook when that run did not execute it), with a badge cell on top and a Verification
section at the end, and it writes ``docs/report.md`` from the report. Runbooks with measurements
get plots in ``docs/plots/`` (see :mod:`proven.plots`) on both pages. A page claims "passed"
only when :func:`judge` finds nothing to doubt; every doubt becomes a stated reason.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from proven import plots, site_markdown
from proven.errors import ProvenError
from proven.guides import GUIDES, ROOT, Guide
from proven.report import CARRIED, FAILED, NOT_RUN, PASSED, SKIPPED, Report, RunbookReport

log = logging.getLogger("proven")

REPORT_ENV = "PROVEN_REPORT"
VERIFIED = "verified"
NOT_VERIFIED = "not verified"
# Outcomes after which the runbook's executed notebook exists and shows real output.
RAN = (PASSED, FAILED, CARRIED)
BADGE_CELL_ID = "proven-badge"
VERIFICATION_CELL_ID = "proven-verification"
# Cells papermill adds to an executed notebook: the values it passed, and error banners.
PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


class SiteError(ProvenError):
    """The site cannot be built as asked (a runbook missing, a page shadowed, a bad report)."""


@dataclass(frozen=True)
class Badge:
    """What a guide page may claim about its last verify run."""

    label: str  # "passed", "carried over" or "not verified"
    tone: str  # colour: "passed", "failed" or "unverified"
    reasons: tuple[str, ...] = ()  # why the page is not verified; empty when it is
    date: str = ""
    commit: str = ""
    box: str = ""
    duration: str = ""
    checks: str = ""  # "passed/total"

    @property
    def verified(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Page:
    """One generated page and what the build wrote."""

    path: Path
    badge: Badge | None
    source: Path | None
    written: bool


# ---------------------------------------------------------------------------------------------
# Where things are


def report_path(root: Path = ROOT) -> Path:
    """The report the site is built from: ``$PROVEN_REPORT`` or ``build/report.json``."""
    override = os.environ.get(REPORT_ENV)
    return Path(override).resolve() if override else root / "build" / "report.json"


def runbook_path(guide: Guide, root: Path = ROOT) -> Path:
    return root / "runbooks" / f"{guide.slug}.ipynb"


def executed_path(rb: RunbookReport, root: Path, report_file: Path) -> Path:
    """The executed notebook of ``rb``: as the report names it, else next to the report."""
    if rb.executed_notebook:
        named = Path(rb.executed_notebook)
        return named if named.is_absolute() else root / named
    return report_file.parent / "executed" / f"{rb.slug}.ipynb"


def _git(root: Path, *args: str) -> str | None:
    """What ``git ARGS`` prints at ``root``, or None when git fails (not a checkout)."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def git_head(root: Path = ROOT) -> str | None:
    """The commit checked out at ``root``, or None outside a git checkout."""
    return (_git(root, "rev-parse", "HEAD") or "").strip() or None


def local_changes(paths: Sequence[Path], root: Path = ROOT) -> tuple[str, ...]:
    """Those of ``paths`` with uncommitted changes (a page must not vouch for edits)."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return ()
    # Not a checkout: judge() already refuses to vouch without a commit.
    out = _git(root, "status", "--porcelain", "--", *existing) or ""
    return tuple(line[3:] for line in out.splitlines() if line.strip())


def load_report(path: Path) -> Report | None:
    """The report at ``path``; None when there is none; a SiteError when it is unreadable."""
    try:
        return Report.load(path)
    except (ValueError, TypeError, KeyError) as err:
        raise SiteError(
            f"verification report {path} cannot be read: {err}",
            hint="run `nox -s verify` again, or delete the file to build a site without one",
        ) from err


# ---------------------------------------------------------------------------------------------
# The badge rules


def judge(
    slug: str,
    report: Report | None,
    head: str | None,
    *,
    notebook_problem: str = "",
    changes: Sequence[str] = (),
) -> Badge:
    """The badge for guide ``slug``: passed or carried over only when nothing casts doubt.

    ``notebook_problem`` says why the run's executed notebook cannot be shown (see
    :func:`check_executed`); ``changes`` lists the guide's files with uncommitted edits.
    """
    if report is None:
        return Badge(NOT_VERIFIED, "unverified", ("no verification report was found",))

    reasons: list[str] = []
    if not head:
        reasons.append("the site is not built from a git checkout, so no commit can be matched")
    elif not same_commit(report.commit, head):
        reasons.append(
            f"the report is for commit {short(report.commit) or 'unknown'}, "
            f"this site is built from {short(head)}"
        )
    if report.commit_dirty:
        reasons.append("the verify run had uncommitted changes")
    reasons += [f"{path} changed since the last commit" for path in changes]

    rb = report.runbook(slug)
    if rb is None:
        reasons.append("this runbook is not in the report")
        return Badge(NOT_VERIFIED, "unverified", tuple(reasons), **run_facts(report, None))

    reasons += runbook_doubts(rb)
    if rb.outcome in RAN and notebook_problem:
        reasons.append(notebook_problem)

    failed = rb.outcome == FAILED or rb.checks_failed > 0
    if reasons:
        tone = "failed" if failed else "unverified"
        return Badge(NOT_VERIFIED, tone, tuple(reasons), **run_facts(report, rb))
    return Badge(rb.outcome, "passed", (), **run_facts(report, rb))


def runbook_doubts(rb: RunbookReport) -> list[str]:
    """Why ``rb`` on its own does not prove its guide (empty when it does)."""
    doubts = []
    if rb.outcome not in (PASSED, CARRIED):
        at = f" at step {rb.failed_step}" if rb.failed_step else ""
        doubts.append(f"the runbook's outcome was “{rb.outcome}”{at}")
    if rb.outcome == CARRIED and not rb.carried_from:
        doubts.append("it was carried over without the date of the run that proved it")
    if rb.steps == 0:
        doubts.append("no steps were recorded")
    elif rb.steps_run < rb.steps:
        doubts.append(f"only {rb.steps_run} of {rb.steps} steps ran")
    if not rb.checks:
        doubts.append("no checks ran")
    counts: dict[str, int] = {}
    for check in rb.checks:
        if check.outcome != PASSED:
            counts[check.outcome] = counts.get(check.outcome, 0) + 1
    for outcome, n in sorted(counts.items()):
        doubts.append(f"{n} check{'s' if n > 1 else ''} {outcome_phrase(outcome)}")
    return doubts


def outcome_phrase(outcome: str) -> str:
    return {FAILED: "failed", SKIPPED: "skipped", NOT_RUN: "did not run"}.get(
        outcome, f"ended “{outcome}”"
    )


def run_facts(report: Report, rb: RunbookReport | None) -> dict[str, str]:
    """The facts a badge shows about the run, whatever its verdict."""
    carried = rb is not None and rb.outcome == CARRIED
    # A carried-over result was proven by an earlier run, at the commit that run was at.
    commit = rb.carried_commit if carried and rb.carried_commit else report.commit
    facts = {"commit": short(commit), "box": box_label(report.box)}
    facts["date"] = day(rb.carried_from if carried else report.started)
    if rb is not None:
        facts["duration"] = duration(rb.duration_s)
        facts["checks"] = f"{rb.checks_passed}/{len(rb.checks)}"
    return facts


def check_executed(runbook: Path, executed: Path) -> str:
    """Why ``executed`` cannot stand for ``runbook`` on the page; empty when it can."""
    if not executed.exists():
        return "the executed notebook is missing, so the page shows no output"
    if cell_sources(runbook) != cell_sources(executed):
        return "the runbook changed after it ran, so the page shows it without output"
    return ""


def cell_sources(path: Path) -> list[tuple[str, str]]:
    """A notebook's cells as (type, source), without the cells papermill adds."""
    nb = nbformat.read(path, as_version=4)
    return [
        (c.cell_type, c.source)
        for c in nb.cells
        if not PAPERMILL_TAGS.intersection(c.metadata.get("tags", []))
    ]


def same_commit(a: str, b: str) -> bool:
    """Whether two commit ids name the same commit (either may be abbreviated)."""
    if not a or not b or min(len(a), len(b)) < 7:
        return False
    return a.startswith(b) or b.startswith(a)


# ---------------------------------------------------------------------------------------------
# Formatting


def short(commit: str) -> str:
    return commit[:7]


def day(timestamp: str) -> str:
    """The date part of an ISO 8601 timestamp ("2025-03-01T10:00:00Z" -> "2025-03-01")."""
    return timestamp[:10] if len(timestamp) >= 10 and timestamp[4] == "-" else timestamp


def when(timestamp: str) -> str:
    """An ISO 8601 UTC timestamp as "2025-03-01 10:00 UTC"."""
    if len(timestamp) >= 16 and timestamp[10] == "T":
        return f"{timestamp[:10]} {timestamp[11:16]} UTC"
    return timestamp or "–"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def box_label(box: dict) -> str:
    """A box as "name version" from whichever of those keys the report has."""
    parts = [str(box[k]) for k in ("name", "version") if box.get(k)]
    return " ".join(parts) or "unknown box"


def nav_title(guide: Guide) -> str:
    """The guide's numbered title, as in the navigation ("1. Mirror two disks ...")."""
    return f"{int(guide.slug.split('-', 1)[0])}. {guide.title}"


def cell(text: object) -> str:
    """Text made safe for a Markdown table cell."""
    flat = " ".join(str(text).split())
    return html.escape(flat, quote=False).replace("|", "\\|")


def code(text: object) -> str:
    flat = " ".join(str(text).split()).replace("`", "'").replace("|", "\\|")
    return f"`{flat}`" if flat else ""


def outcome_html(outcome: str) -> str:
    slug = outcome.replace(" ", "-")
    return f'<span class="proven-outcome proven-outcome--{slug}">{html.escape(outcome)}</span>'


def badge_html(badge: Badge, links: Iterable[tuple[str, str]] = ()) -> str:
    """The badge as one HTML block (renders the same in notebook and Markdown pages)."""
    facts = [
        f"on {badge.date}" if badge.date else "",
        f"commit {badge.commit}" if badge.commit else "",
        f"box {badge.box}" if badge.box else "",
        f"took {badge.duration}" if badge.duration else "",
        f"checks {badge.checks} passed" if badge.checks else "",
    ]
    facts = [html.escape(f) for f in facts if f]
    if badge.label == CARRIED and badge.date:
        facts[0] = html.escape(f"proven on {badge.date}, carried over unchanged")
    parts = [
        f'<div class="proven-badge proven-badge--{badge.tone}">',
        f'<span class="proven-badge__label">{html.escape(badge.label)}</span>',
    ]
    if facts:
        parts.append(f'<span class="proven-badge__facts">{" · ".join(facts)}</span>')
    if badge.reasons:
        why = "; ".join(badge.reasons)
        parts.append(f'<span class="proven-badge__why">Why: {html.escape(why)}.</span>')
    link_html = [f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for text, href in links]
    if link_html:
        parts.append(f'<span class="proven-badge__links">{" · ".join(link_html)}</span>')
    parts.append("</div>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Guide pages


def checks_table(rb: RunbookReport) -> list[str]:
    rows = ["| Check | Stage | Outcome |", "|---|---|---|"]
    for check in rb.checks:
        outcome = outcome_html(check.outcome)
        if check.message and check.outcome != PASSED:
            outcome += f"<br>{cell(check.message[:300])}"
        rows.append(f"| {code(check.name)} | {cell(check.stage)} | {outcome} |")
    return rows


def verification_markdown(
    guide: Guide,
    rb: RunbookReport | None,
    badge: Badge,
    next_link: tuple[str, str],
    measured: Sequence[str] = (),
    runbook: Path | None = None,
) -> str:
    """The Verification section appended to a guide page; ``measured`` holds its plots."""
    lines = ["## Verification", ""]
    checks_file = f"tests/checks/{guide.checks.name}"
    if rb is not None and rb.checks:
        lines += [
            f"After the steps above, the pipeline checked the lab VM with pytest-testinfra "
            f"({code(checks_file)}). These are the checks and how each one ended:",
            "",
            *checks_table(rb),
            "",
        ]
    else:
        lines += [
            f"The checks for this guide live in {code(checks_file)}. No verify run has "
            "recorded their outcome for the commit this site was built from, so the steps "
            "above come without proof and without output.",
            "",
        ]
    if measured:
        lines += ["### Measured results", "", *measured]
    if not badge.verified:
        lines += [f"This page is **not verified**: {'; '.join(badge.reasons)}.", ""]
    lines += run_it_yourself(guide, runbook)
    text, href = next_link
    lines.append(f"**Next:** [{text}]({href})")
    return "\n".join(lines)


def run_it_yourself(guide: Guide, runbook: Path | None = None) -> list[str]:
    """How to plan and run this guide's runbook with `proven`, on the lab or on a server.

    The server commands carry every parameter with the runbook's own default, ready to edit.
    """
    from proven.runbook import defaults  # papermill is slow to import; only the site needs it

    slug = guide.slug
    values = defaults(runbook or guide.runbook)
    needs = [g.slug for g in needed(guide)]
    given = " ".join(f"-p {name}={shlex.quote(str(value))}" for name, value in values.items())
    server = f"proven run {slug} --target ssh://admin@server.example.org"
    lines = [
        "## Run it yourself",
        "",
        f"The runbook is {code(f'runbooks/{slug}.ipynb')} in the repository (the download "
        "button above gives this page's copy). On a lab VM of your own, with the lab's values "
        "as verify uses them:",
        "",
        "```sh",
        *aligned(
            [
                (f"proven run {slug} --plan", "every step with the values filled in; runs nothing"),
                ("proven up", "a fresh lab VM, left running"),
                *[(f"proven run {need} --target lab", "a guide this one needs") for need in needs],
                (f"proven run {slug} --target lab", "step by step, with each step's output"),
                (f"proven check {slug}", "the guide's checks, as verify runs them"),
                ("proven destroy", "the VM is gone"),
            ]
        ),
        "```",
        "",
        "On a server you reach with SSH as a user with password-less sudo, review the plan with "
        "your values first; the values below are the runbook's own defaults:",
        "",
        "```sh",
        f"{server} --plan {given}".rstrip(),
        f"{server} {given}".rstrip(),
        "```",
        "",
    ]
    return lines


def needed(guide: Guide) -> list[Guide]:
    """The guides that must run before ``guide`` on the same machine, in order."""
    found: list[Guide] = []
    for slug in guide.needs:
        need = next((g for g in GUIDES if g.slug == slug), None)
        if need is not None:
            found += [g for g in needed(need) if g not in found] + [need]
    return found


def aligned(commands: Sequence[tuple[str, str]]) -> list[str]:
    """Shell lines with their comments lined up."""
    width = max(len(command) for command, _ in commands) + 2
    return [f"{command:<{width}}# {comment}" for command, comment in commands]


def markdown_cell(source: str, cell_id: str, with_id: bool) -> nbformat.NotebookNode:
    # A fixed id keeps the written file identical between builds, so `mkdocs serve` settles.
    cell = nbformat.v4.new_markdown_cell(source)
    if with_id:
        cell["id"] = cell_id
    else:
        cell.pop("id", None)
    return cell


def guide_notebook(
    source: Path,
    guide: Guide,
    rb: RunbookReport | None,
    badge: Badge,
    links: dict[str, str],
    measured: Sequence[str] = (),
    markdown: site_markdown.Settings | Callable[[], site_markdown.Settings] | None = None,
) -> str:
    """The page notebook for ``guide``: ``source`` with a badge on top and Verification below.

    Tabs and admonitions in its Markdown cells are rendered with ``markdown``, the site's
    Markdown settings (see :mod:`proven.site_markdown`).
    """
    nb = nbformat.read(source, as_version=4)
    link_guides(nb, guide, links)
    try:
        site_markdown.render_notebook(nb, markdown)
    except site_markdown.MarkdownError as err:
        raise SiteError(f"guide {guide.slug}: {err.args[0]}", hint=err.hint) from err
    with_id = (nb.nbformat, nb.nbformat_minor) >= (4, 5)
    badge_links = [("Verification report", links["report"]), ("Download", links["download"])]
    nb.cells.insert(0, markdown_cell(badge_html(badge, badge_links), BADGE_CELL_ID, with_id))
    next_link = (links["next_text"], links["next"])
    tail = verification_markdown(guide, rb, badge, next_link, measured, runbook=source)
    nb.cells.append(markdown_cell(tail, VERIFICATION_CELL_ID, with_id))
    return nbformat.writes(nb)


# A Markdown link to another guide's notebook, as it works in Jupyter: [text](02-kvm-host.ipynb)
GUIDE_LINK = re.compile(r"\]\((?P<slug>[\w-]+)\.ipynb(?P<anchor>#[^)\s]*)?\)")


def link_guides(nb: nbformat.NotebookNode, guide: Guide, links: dict[str, str]) -> None:
    """Point the links of ``nb``'s Markdown cells to other guides' notebooks at their pages.

    mkdocs checks and rewrites links on Markdown pages only, and a notebook page's links would
    reach the page's directory, where no other notebook is. A cell keeps its Markdown as written
    in its metadata, for the copy the page offers for download (see proven.site_markdown).
    """

    def page(match: re.Match) -> str:
        target = links.get(f"guide:{match['slug']}")
        if target is None:
            raise SiteError(
                f"guide {guide.slug} links to {match['slug']}.ipynb, which is not a guide",
                hint="link a guide by its runbook's name, one of: "
                + ", ".join(
                    k.removeprefix("guide:") + ".ipynb" for k in links if k[:6] == "guide:"
                ),
            )
        return f"]({target}{match['anchor'] or ''})"

    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        linked = GUIDE_LINK.sub(page, cell.source)
        if linked != cell.source:
            cell.metadata.setdefault(site_markdown.METADATA, {})["markdown"] = cell.source
            cell.source = linked


def page_links(
    guide: Guide, following: Guide | None, directory_urls: bool, guides: Sequence[Guide] = GUIDES
) -> dict[str, str]:
    """Links from a guide page, relative to where mkdocs puts it.

    Notebook pages bypass mkdocs' Markdown link rewriting, so these are site URLs.
    """
    up = "../../" if directory_urls else "../"

    def url(page: str) -> str:  # page as "guides/02-slug" or "report"
        return up + (f"{page}/" if directory_urls else f"{page}.html")

    links = {"report": url("report"), "download": f"{guide.slug}.ipynb", "plots": up + "plots/"}
    links.update({f"guide:{g.slug}": url(f"guides/{g.slug}") for g in guides})
    if following is None:
        links["next"], links["next_text"] = url("report"), "The verification report"
    else:
        links["next"], links["next_text"] = url(f"guides/{following.slug}"), nav_title(following)
    return links


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless ``path`` holds it already (mkdocs serve rebuilds on every write)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


# ---------------------------------------------------------------------------------------------
# The report page


def report_markdown(
    report: Report | None,
    head: str | None,
    badges: dict[str, Badge],
    report_file: Path,
    root: Path = ROOT,
    guides: Sequence[Guide] = GUIDES,
    figures: dict[str, list[plots.Plot]] | None = None,
) -> str:
    """The verification report page, in Markdown; ``figures`` are the runbooks' plots."""
    shown = report_file.relative_to(root) if report_file.is_relative_to(root) else report_file
    lines = ["# Verification report", ""]
    if report is None:
        lines += [
            '!!! warning "No verification report"',
            "",
            f"    This site was built without a report: there is none at {code(shown)}. "
            "Every guide says **not verified** until `nox -s verify` has run the runbooks "
            "on a lab VM and recorded what happened.",
            "",
        ]
    else:
        lines += [
            f"The last verify run, as recorded in {code(shown)}. A guide shows **passed** "
            "only when its runbook ran every step and every check passed, on the commit "
            "this site was built from.",
            "",
            *run_summary(report, head),
            *phases_table(report),
        ]
    lines += runbooks_section(report, badges, guides, figures or {})
    return "\n".join(lines).rstrip() + "\n"


def run_summary(report: Report, head: str | None) -> list[str]:
    if not head:
        match = "this site was not built from a git checkout"
    elif same_commit(report.commit, head):
        match = "the commit this site was built from"
    else:
        match = f"not the commit this site was built from ({short(head)})"
    dirty = ", with uncommitted changes" if report.commit_dirty else ""
    rows = [
        ("Outcome", outcome_html(report.outcome)),
        ("Started", cell(when(report.started))),
        ("Finished", cell(when(report.finished))),
        ("Commit", f"{code(short(report.commit)) or '–'}, {cell(match + dirty)}"),
        ("Box", mapping(report.box)),
        ("Host", mapping(report.host)),
        ("Tools", mapping(report.tools)),
    ]
    lines = ["## Run", ""]
    lines += [f"- **{name}:** {value}" for name, value in rows]
    if report.error:
        lines += ["", f"**Error:** {cell(report.error)}"]
    return [*lines, ""]


def mapping(values: dict) -> str:
    return ", ".join(f"{cell(k)} {code(v)}" for k, v in values.items()) or "–"


def phases_table(report: Report) -> list[str]:
    if not report.phases:
        return ["## Phases", "", "The report records no phases.", ""]
    lines = [
        "## Phases",
        "",
        "Runbooks and checks pass or fail; the phases that prepare the ground for them (the "
        "host, the box, the VM, the reboot, the clean-up, the site) are *done* or *failed*.",
        "",
        "| Phase | Outcome | Duration | Detail |",
        "|---|---|--:|---|",
    ]
    for p in report.phases:
        detail = cell(p.detail) or "–"
        row = f"| {cell(p.name)} | {outcome_html(p.outcome)} | {duration(p.duration_s)} | {detail}"
        lines.append(row + " |")
    total = sum(p.duration_s for p in report.phases)
    return [*lines, f"| **Total** | | **{duration(total)}** | |", ""]


def runbooks_section(
    report: Report | None,
    badges: dict[str, Badge],
    guides: Sequence[Guide],
    figures: dict[str, list[plots.Plot]] | None = None,
) -> list[str]:
    known = {g.slug: g for g in guides}
    slugs = [g.slug for g in guides]
    if report is not None:
        slugs += [rb.slug for rb in report.runbooks if rb.slug not in known]

    lines = [
        "## Runbooks",
        "",
        "| Guide | Badge | Outcome | Duration | Steps run | Checks passed |",
    ]
    lines.append("|---|---|---|--:|--:|--:|")
    for slug in slugs:
        rb = report.runbook(slug) if report else None
        title = nav_title(known[slug]) if slug in known else rb.title
        page = badges[slug].label if slug in badges else "not on the site"
        if rb is None:
            not_run = outcome_html("not run")
            lines.append(f"| [{cell(title)}](#{slug}) | {page} | {not_run} | – | – | – |")
            continue
        lines.append(
            f"| [{cell(title)}](#{slug}) | {page} | {outcome_html(rb.outcome)} "
            f"| {duration(rb.duration_s)} | {rb.steps_run}/{rb.steps} "
            f"| {rb.checks_passed}/{len(rb.checks)} |"
        )
    lines.append("")
    for slug in slugs:
        lines += runbook_detail(
            slug, report, badges.get(slug), known.get(slug), (figures or {}).get(slug, [])
        )
    return lines


def runbook_detail(
    slug: str,
    report: Report | None,
    badge: Badge | None,
    guide: Guide | None,
    figures: Sequence[plots.Plot] = (),
) -> list[str]:
    rb = report.runbook(slug) if report else None
    title = nav_title(guide) if guide else rb.title
    lines = [f"### {cell(title)} {{#{slug}}}", ""]
    if badge is not None:
        lines += [badge_html(badge), ""]
    if guide is not None:
        lines += [f"[Read the guide](guides/{slug}.ipynb)", ""]
    if rb is None:
        return [*lines, "This runbook did not take part in the run.", ""]
    if rb.carried_from:
        lines += [f"Carried over from the run of {cell(when(rb.carried_from))}.", ""]
    if rb.failed_step or rb.error:
        lines += [f"**Failed at step {cell(rb.failed_step or '?')}:** {cell(rb.error)}", ""]
    if rb.parameters:
        params = ", ".join(code(f"{k}={v}") for k, v in rb.parameters.items())
        lines += [f"Parameters: {params}", ""]
    if figures:
        lines += ["Measured results:", "", *plots.section(figures, "plots/", markdown_image=True)]
    if rb.checks:
        lines += ["Checks:", "", *checks_table(rb), ""]
    else:
        lines += ["No checks ran.", ""]
    return lines


# ---------------------------------------------------------------------------------------------
# The build


def find_shadows(docs_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs of a ``.md`` and an ``.ipynb`` with the same stem in the same folder."""
    pairs = []
    for notebook in sorted(docs_dir.rglob("*.ipynb")):
        markdown = notebook.with_suffix(".md")
        if markdown.exists():
            pairs.append((markdown, notebook))
    return pairs


def check_shadows(docs_dir: Path) -> None:
    """Fail when one page would hide another (mkdocs-jupyter once dropped outputs that way)."""
    pairs = find_shadows(docs_dir)
    if pairs:
        names = "; ".join(f"{md} and {nb}" for md, nb in pairs)
        raise SiteError(
            f"two sources for the same page: {names}",
            hint="rename or delete one of each pair; a page has one source",
        )


def remove_stale(guides_dir: Path, keep: set[Path]) -> None:
    """Drop generated notebooks of guides that no longer exist (all are gitignored)."""
    for path in guides_dir.glob("[0-9][0-9]-*.ipynb"):
        if path not in keep:
            log.info("removing %s: no such guide any more", path)
            path.unlink()


def draw_plots(report: Report | None, plots_dir: Path) -> dict[str, list[plots.Plot]]:
    """Plot every runbook's measurements into ``plots_dir``; a SiteError names a bad one."""
    figures, taken = {}, set()
    for rb in report.runbooks if report else ():
        try:
            measured = plots.parse_all(rb.slug, rb.measurements)
            if measured:
                figures[rb.slug] = plots.write(measured, plots_dir, taken)
        except plots.MeasurementError as err:
            raise SiteError(str(err.args[0]), hint=err.hint) from err
        except ImportError as err:  # matplotlib is needed only once a runbook measures
            raise SiteError(
                f"runbook {rb.slug} has measurements, but {err.name or 'matplotlib'} is missing",
                hint="pip install matplotlib, then build again",
            ) from err
    drawn = [p for runbook_plots in figures.values() for p in runbook_plots]
    plots.remove_stale(plots_dir, {p.path for p in drawn})
    if drawn:
        redrawn = sum(p.written for p in drawn)
        log.info("plots: %d in %s, %d redrawn", len(drawn), plots_dir, redrawn)
    return figures


def generate(
    docs_dir: Path,
    root: Path = ROOT,
    report_file: Path | None = None,
    *,
    head: str | None = None,
    guides: Sequence[Guide] = GUIDES,
    directory_urls: bool = True,
    markdown: site_markdown.Settings | None = None,
) -> list[Page]:
    """Write every guide's page notebook and the report page under ``docs_dir``.

    ``head`` is the commit the site is built from; by default ``git rev-parse HEAD`` at ``root``.
    ``markdown`` holds the Markdown extensions mkdocs builds with; by default they are read
    from ``root``'s mkdocs.yml once a guide uses tabs or admonitions.
    """
    if markdown is None:
        markdown = functools.cache(lambda: site_markdown.Settings.load(root / "mkdocs.yml"))
    report_file = report_file or report_path(root)
    report = load_report(report_file)
    head = head or git_head(root)
    log.info("building pages from %s", report_file if report else "no report")
    # Plots first: a measurement that breaks the schema stops the build before any page.
    figures = draw_plots(report, docs_dir / "plots")

    # Each guide's page: the executed notebook when this run ran it, else the bare runbook.
    pages, badges = [], {}
    for i, guide in enumerate(guides):
        runbook = runbook_path(guide, root)
        if not runbook.exists():
            raise SiteError(
                f"guide {guide.slug} has no runbook: {runbook} is missing",
                hint="add the runbook, or take the guide out of GUIDES in src/proven/guides.py",
            )
        rb = report.runbook(guide.slug) if report else None
        source, problem = runbook, ""
        if rb is not None and rb.outcome in RAN:
            executed = executed_path(rb, root, report_file)
            problem = check_executed(runbook, executed)
            source = runbook if problem else executed
        changes = local_changes([runbook, root / "tests" / "checks" / guide.checks.name], root)
        badge = judge(guide.slug, report, head, notebook_problem=problem, changes=changes)
        badges[guide.slug] = badge

        following = guides[i + 1] if i + 1 < len(guides) else None
        links = page_links(guide, following, directory_urls, guides)
        measured = plots.section(figures.get(guide.slug, []), links["plots"], markdown_image=False)
        text = guide_notebook(source, guide, rb, badge, links, measured, markdown)
        target = docs_dir / "guides" / f"{guide.slug}.ipynb"
        pages.append(Page(target, badge, source, write_if_changed(target, text)))

    remove_stale(docs_dir / "guides", {p.path for p in pages})

    # The report page, then the guard against pages that hide each other.
    text = report_markdown(report, head, badges, report_file, root, guides, figures)
    target = docs_dir / "report.md"
    pages.append(
        Page(target, None, report_file if report else None, write_if_changed(target, text))
    )
    check_shadows(docs_dir)
    return pages
