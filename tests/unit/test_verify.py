"""Carrying results over between verify runs, and collecting a runbook's measurements."""

from __future__ import annotations

import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from proven import inputs, verify
from proven.guides import GUIDES, ROOT, Guide, by_slug, from_path
from proven.report import CARRIED, NOT_RUN, PASSED, Check, Report, RunbookReport

BASE = Guide(slug="01-base", title="Base")
TOP = Guide(slug="02-top", title="Top", needs=("01-base",))


def reports(old_outcome=PASSED, old_inputs="abc", new_inputs="abc", notebook="README.md"):
    previous = Report(finished="2026-12-01T10:00:00Z", commit="c0ffee1234567")
    previous.runbooks = [
        RunbookReport(
            slug=g.slug,
            title=g.title,
            outcome=old_outcome,
            inputs=old_inputs,
            steps=3,
            steps_run=3,
            executed_notebook=notebook,
            checks=[Check(name="test_x", outcome=PASSED, stage="after runbook")],
        )
        for g in (BASE, TOP)
    ]
    report = Report()
    report.runbooks = [
        RunbookReport(slug=g.slug, title=g.title, inputs=new_inputs) for g in (BASE, TOP)
    ]
    return report, previous


def test_unchanged_passing_runbooks_are_carried_over_with_their_date():
    """Equal inputs and a passing earlier run mean nothing runs, and the date is kept."""
    report, previous = reports()

    to_run = verify.carry_over(report, previous, [BASE, TOP])

    assert to_run == []
    assert [r.outcome for r in report.runbooks] == [CARRIED, CARRIED]
    assert report.runbooks[0].carried_from == "2026-12-01T10:00:00Z"
    assert report.runbooks[0].carried_commit == "c0ffee1234567"
    assert report.runbooks[0].checks_passed == 1


def test_changed_inputs_run_the_guide_and_what_it_needs():
    """A guide whose inputs changed runs again, and so does the guide it needs."""
    report, previous = reports()
    report.runbooks[1].inputs = "changed"

    to_run = verify.carry_over(report, previous, [BASE, TOP])

    assert to_run == [BASE, TOP]
    assert [r.outcome for r in report.runbooks] == [NOT_RUN, NOT_RUN]


def test_a_failed_earlier_run_is_never_carried_over():
    """Only passing results carry over."""
    report, previous = reports(old_outcome="failed")

    assert verify.carry_over(report, previous, [BASE, TOP]) == [BASE, TOP]


def test_a_missing_executed_notebook_means_running_again():
    """Without the earlier executed notebook there is no output to show: run again."""
    report, previous = reports(notebook="build/executed/gone.ipynb")

    assert verify.carry_over(report, previous, [BASE]) == [BASE]


def test_no_previous_report_runs_everything():
    """The first run on a machine runs every guide."""
    report, _ = reports()

    assert verify.carry_over(report, None, [BASE, TOP]) == [BASE, TOP]


def test_measurement_lines_are_collected_by_name(tmp_path):
    """Lines starting with PROVEN-MEASUREMENT become the runbook's measurements."""
    nb = new_notebook()
    cell = new_code_cell("bench")
    figure = {"name": "opcache", "unit": "ms", "series": {"off": [40.0], "on": [12.0]}}
    line = verify.MEASUREMENT + json.dumps(figure)
    cell.outputs = [new_output("stream", name="stdout", text=f"warming up\n{line}\n")]
    nb.cells = [cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)

    assert verify.measurements(path) == {"opcache": figure}


def test_root_is_the_repository():
    """Paths in the report are relative to the repository root."""
    assert (ROOT / "pyproject.toml").exists()


def test_a_change_to_a_shipped_file_changes_the_guides_inputs(tmp_path, monkeypatch):
    """A tool the runbook copies onto its target is one of its inputs, like the runbook."""
    tool = tmp_path / "tool.py"
    tool.write_text("print('v1')\n")
    nb = new_notebook(cells=[new_code_cell("true")])
    nb.metadata["proven"] = {"ship": {"/usr/local/bin/tool": str(tool)}}
    nbformat.write(nb, tmp_path / "01-tool.ipynb")
    guide = Guide(slug="01-tool", title="Tool", runbooks_dir=tmp_path, checks_dir=tmp_path)
    before = inputs.digest(guide, {}, 2)

    tool.write_text("print('v2')\n")

    assert inputs.digest(guide, {}, 2) != before


def test_a_run_without_second_runs_is_not_carried_into_one_with_them(monkeypatch):
    """--no-second-run and other VM settings are inputs: a plain verify runs the guide again."""
    guide = Guide(slug="01-storage", title="Storage")
    plain = inputs.digest(guide, {}, 2)

    assert inputs.digest(guide, {}, 2, second_run=False) != plain
    monkeypatch.setenv("PROVEN_DISK_CACHE", "none")
    assert inputs.digest(guide, {}, 2) != plain


def earlier_full_run(**changes) -> Report:
    """A passing earlier report of every project guide, with the inputs they have now."""
    previous = Report(finished="2026-12-02T08:00:00Z", commit="0ld0c0mm17")
    for guide in GUIDES:
        rb = RunbookReport(
            slug=guide.slug,
            title=guide.title,
            outcome=PASSED,
            inputs=inputs.digest(guide, dict(guide.lab_parameters), 2),
            parameters=dict(guide.lab_parameters),
            executed_notebook="README.md",
            checks=[Check(name="test_x", outcome=PASSED, stage="after runbook")],
        )
        previous.runbooks.append(RunbookReport(**{**rb.__dict__, **changes.get(guide.slug, {})}))
    return previous


def test_guides_not_asked_for_keep_their_earlier_passing_result():
    """After `verify 03` the other guides still show what the earlier run proved of them."""
    chosen = by_slug("03-apache-fcgid")
    report = Report(runbooks=[RunbookReport(slug=chosen.slug, title=chosen.title)])
    previous = earlier_full_run(**{"05-php-benchmark": {"inputs": "changed since"}})

    verify.keep_unselected(report, previous, verify.Options(guides=[chosen]))

    slugs = [rb.slug for rb in report.runbooks]
    assert slugs == [g.slug for g in GUIDES if g.slug != "05-php-benchmark"]
    assert report.runbook(chosen.slug).outcome == NOT_RUN
    kept = report.runbook("01-storage")
    assert kept.outcome == CARRIED
    assert (kept.carried_from, kept.carried_commit) == ("2026-12-02T08:00:00Z", "0ld0c0mm17")


def test_a_failed_or_missing_earlier_result_is_not_kept():
    """Only a passing result whose executed notebook is still there is kept."""
    chosen = by_slug("01-storage")
    report = Report(runbooks=[RunbookReport(slug=chosen.slug, title=chosen.title)])
    previous = earlier_full_run(
        **{"02-kvm-host": {"outcome": "failed"}, "04-opcache": {"executed_notebook": "gone"}}
    )

    verify.keep_unselected(report, previous, verify.Options(guides=[chosen]))

    assert "02-kvm-host" not in [rb.slug for rb in report.runbooks]
    assert "04-opcache" not in [rb.slug for rb in report.runbooks]
    assert report.runbook("03-apache-fcgid").outcome == CARRIED


def test_a_run_of_other_runbooks_reports_them_alone(tmp_path):
    """A draft or test-case runbook's run does not carry the project's guides along."""
    nbformat.write(new_notebook(cells=[new_code_cell("true")]), tmp_path / "90-draft.ipynb")
    draft = from_path(tmp_path / "90-draft.ipynb")
    report = Report(runbooks=[RunbookReport(slug=draft.slug, title=draft.title)])

    verify.keep_unselected(report, earlier_full_run(), verify.Options(guides=[draft]))

    assert [rb.slug for rb in report.runbooks] == ["90-draft"]
