"""Measurements from the report: the schema, the numbers, the plots and their place on pages."""

from __future__ import annotations

import math
import re
import sys
import xml.etree.ElementTree as ET

import nbformat
import pytest

from proven import plots, site
from proven.guides import Guide
from proven.report import PASSED, Check, Report, RunbookReport

HEAD = "0123456789abcdef0123456789abcdef01234567"
GUIDE = Guide(slug="04-opcache", title="Cache PHP opcodes")


def opcache(**changes) -> dict:
    raw = {
        "name": "opcache",
        "unit": "ms",
        "title": "Time to render the front page",
        "series": {"off": [41.0, 40.0, 45.5], "on": [12.0, 11.5, 12.25, 13.0]},
    }
    return {**raw, **changes}


# ---------------------------------------------------------------------------------------------
# The schema


def test_a_valid_measurement_is_read_with_its_series_in_order():
    """Name, unit, title and each series' samples come through as given."""
    m = plots.parse("04-opcache", "opcache", opcache())

    assert (m.runbook, m.name, m.unit, m.title) == (
        "04-opcache",
        "opcache",
        "ms",
        "Time to render the front page",
    )
    assert [s.label for s in m.series] == ["off", "on"]
    assert m.series[1].samples == (12.0, 11.5, 12.25, 13.0)


def test_title_is_optional_and_unit_may_be_empty():
    """A plain number needs no unit, and the name stands in for a missing title."""
    raw = opcache(unit="")
    del raw["title"]

    m = plots.parse("05-bench", "opcache", raw)

    assert (m.unit, m.title, plots.caption(m)) == ("", "", "opcache")


BAD_MEASUREMENTS = {
    "not an object": ([1, 2], "must be an object with name, unit and series, not a list"),
    "no unit": ({"name": "opcache", "series": {"on": [1]}}, "lacks 'unit'"),
    "no series or unit": ({"name": "opcache"}, "lacks 'unit', 'series'"),
    "the old free form": ({"name": "opcache", "gain": 2.1}, "lacks 'unit', 'series'"),
    "unknown key": (opcache(samples=[1]), "unknown key(s) 'samples'"),
    "empty name": (opcache(name=""), "name ''"),
    "name differs from key": (opcache(name="apc"), "filed under 'opcache' but named 'apc'"),
    "unit not a string": (opcache(unit=5), "unit 5"),
    "title not a string": (opcache(title=["x"]), "title ['x']"),
    "series empty": (opcache(series={}), "has no series"),
    "series a list": (opcache(series=[1, 2]), "has no series"),
    "label empty": (opcache(series={" ": [1]}), "series labelled ' '"),
    "samples empty": (opcache(series={"on": []}), "series 'on' must be a non-empty list"),
    "samples a number": (opcache(series={"on": 3.5}), "series 'on' must be a non-empty list"),
    "sample a string": (opcache(series={"on": [1, "fast"]}), "series 'on' sample 2 is 'fast'"),
    "sample a boolean": (opcache(series={"on": [True]}), "sample 1 is True"),
    "sample not finite": (opcache(series={"on": [math.nan]}), "sample 1 is nan"),
}


@pytest.mark.parametrize(("raw", "problem"), BAD_MEASUREMENTS.values(), ids=BAD_MEASUREMENTS.keys())
def test_bad_measurement_is_an_error_naming_runbook_and_measurement(raw, problem):
    """A measurement off the schema is refused, saying where it is and what is wrong."""
    with pytest.raises(plots.MeasurementError) as raised:
        plots.parse("04-opcache", "opcache", raw)

    message = str(raised.value)
    assert message.startswith("runbook 04-opcache: measurement 'opcache' ")
    assert problem in message
    assert "PROVEN-MEASUREMENT" in raised.value.hint


# ---------------------------------------------------------------------------------------------
# Numbers and the plot


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (41.0, "41.0"),
        (12.125, "12.1"),
        (0.01234, "0.0123"),
        (1234.5, "1234"),
        (-3, "-3.00"),
    ],
)
def test_numbers_keep_three_significant_digits_without_exponents(value, text):
    """Table figures read like the samples, whatever their size."""
    assert plots.number(value) == text


def test_table_gives_median_min_max_and_count_per_series():
    """The table holds the same numbers the plot draws, one row per series."""
    m = plots.parse("04-opcache", "opcache", opcache())

    assert plots.table(m) == [
        "| Series | Median | Min | Max | Samples |",
        "|---|--:|--:|--:|--:|",
        "| off | 41.0 | 40.0 | 45.5 | 3 |",
        "| on | 12.1 | 11.5 | 13.0 | 4 |",
    ]


def test_plot_is_an_svg_with_labels_and_the_same_text_every_time():
    """The SVG names each series and its unit, and redrawing it changes no byte."""
    m = plots.parse("04-opcache", "opcache", opcache())

    first, second = plots.svg(m), plots.svg(m)

    assert first == second
    assert ET.fromstring(first).tag == "{http://www.w3.org/2000/svg}svg"
    for text in ("off", "on", "opcache (ms)", "median 41.0", "median 12.1", "min to max"):
        assert f">{text}<" in first, text


def test_plot_files_are_named_by_runbook_and_measurement_and_never_collide(tmp_path):
    """Names that simplify to the same file name still get a file each."""
    a = plots.parse("04-opcache", "opcache on", opcache(name="opcache on"))
    b = plots.parse("04-opcache", "opcache-on", opcache(name="opcache-on"))

    drawn = plots.write([a, b], tmp_path, set())

    assert [p.path.name for p in drawn] == [
        "04-opcache-opcache-on.svg",
        "04-opcache-opcache-on-2.svg",
    ]
    assert all(p.written and p.path.is_file() for p in drawn)
    assert not any(p.written for p in plots.write([a, b], tmp_path, set()))


# ---------------------------------------------------------------------------------------------
# On the site


@pytest.fixture
def project(tmp_path):
    """A project root with one runbook that ran, and a report giving it one measurement."""
    root = tmp_path / "project"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Cache PHP opcodes"),
        nbformat.v4.new_code_cell("php -v"),
    ]
    (root / "runbooks").mkdir(parents=True)
    nbformat.write(nb, root / "runbooks" / f"{GUIDE.slug}.ipynb")
    (root / "build" / "executed").mkdir(parents=True)
    nbformat.write(nb, root / "build" / "executed" / f"{GUIDE.slug}.ipynb")
    write_report(root, {"opcache": opcache()})
    return root


def write_report(root, measurements: dict) -> None:
    rb = RunbookReport(
        slug=GUIDE.slug,
        title=GUIDE.title,
        outcome=PASSED,
        steps=1,
        steps_run=1,
        checks=[Check("test_opcache_enabled", PASSED, "after runbook")],
        measurements=measurements,
    )
    Report(started="2025-03-01T10:00:00Z", outcome=PASSED, commit=HEAD, runbooks=[rb]).write(
        root / "build" / "report.json"
    )


def generate(root):
    return site.generate(
        root / "docs", root, root / "build" / "report.json", head=HEAD, guides=(GUIDE,)
    )


def test_guide_page_shows_plot_and_table_in_its_verification_section(project):
    """The plot and its table follow the checks, with the plot's site address."""
    generate(project)

    page = nbformat.read(project / "docs" / "guides" / f"{GUIDE.slug}.ipynb", as_version=4)
    verification = page.cells[-1].source
    measured = verification.index("### Measured results")
    assert verification.index("test_opcache_enabled") < measured < verification.index("**Next:**")
    assert '<img class="proven-plot" src="../../plots/04-opcache-opcache.svg"' in verification
    assert "| on | 12.1 | 11.5 | 13.0 | 4 |" in verification
    assert (project / "docs" / "plots" / "04-opcache-opcache.svg").is_file()


def test_report_page_shows_the_plot_as_a_checked_markdown_image(project):
    """On the Markdown report page the plot is an image link mkdocs can check."""
    generate(project)

    text = (project / "docs" / "report.md").read_text()
    assert re.search(
        r"!\[Time to render the front page, median per series \(off: 41\.0 ms; on: 12\.1 ms\)\]"
        r"\(plots/04-opcache-opcache\.svg\)",
        text,
    )
    assert "| off | 41.0 | 40.0 | 45.5 | 3 |" in text


def test_runbook_without_measurements_gets_no_plot_section(project):
    """No measurements, no heading, no table and no plot files left behind."""
    generate(project)
    write_report(project, {})

    generate(project)

    page = nbformat.read(project / "docs" / "guides" / f"{GUIDE.slug}.ipynb", as_version=4)
    assert "Measured results" not in page.cells[-1].source
    assert "Measured results" not in (project / "docs" / "report.md").read_text()
    assert list((project / "docs" / "plots").glob("*.svg")) == []


def test_bad_measurement_fails_the_site_build_naming_runbook_and_measurement(project):
    """The build stops with a SiteError that says which runbook and measurement to fix."""
    write_report(project, {"opcache": {"name": "opcache", "gain": 2.1}})

    with pytest.raises(site.SiteError, match=r"runbook 04-opcache: measurement 'opcache' lacks"):
        generate(project)

    assert not (project / "docs" / "report.md").exists()


def test_missing_matplotlib_fails_the_build_saying_what_to_install(project, monkeypatch):
    """Without matplotlib a runbook's measurements stop the build with the fix, not a trace."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails

    with pytest.raises(site.SiteError, match="04-opcache has measurements, but matplotlib"):
        generate(project)
