"""Plots of a runbook's measured results, drawn from the report when the site is built.

A runbook records a result by printing one line ``PROVEN-MEASUREMENT {json}`` (verify collects
them into the report's ``measurements``, keyed by name). One measurement is a JSON object::

    {"name": "opcache", "unit": "ms", "title": "Time to render the front page",
     "series": {"OPcache off": [41.2, 40.8, 43.0], "OPcache on": [12.1, 11.7, 12.4]}}

``name``
    required, a non-empty string, the same as its key in ``measurements``.
``unit``
    required, a string: the unit of every sample (``"ms"``, ``"MiB/s"``); ``""`` for a
    plain number.
``series``
    required, a non-empty object mapping a label (a non-empty string) to its samples: a
    non-empty list of finite numbers, one per repetition.
``title``
    optional, a string saying what was measured; the plot and page use it as the caption.

No other keys are allowed, so a misspelt one fails the build instead of vanishing. For each
measurement the site shows an SVG plot (median of each series as a bar, the range from the
smallest to the largest sample as a line, each sample as a dot) and a table of the same
numbers: median, min, max and the number of samples. The plot's legend says which is which.
"""

from __future__ import annotations

import html
import io
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from proven.errors import ProvenError

REQUIRED = ("name", "unit", "series")
OPTIONAL = ("title",)
HINT = (
    "fix the PROVEN-MEASUREMENT line the runbook prints and run verify again; "
    "the schema is described in src/proven/plots.py"
)
# Colours of the site's palette (mkdocs.yml: accent teal, primary blue grey).
BAR_COLOUR = "#4db6ac"
RANGE_COLOUR = "#37474f"
SAMPLE_COLOUR = "#00695c"


class MeasurementError(ProvenError):
    """A measurement in the report does not follow the schema, so it cannot be plotted."""


@dataclass(frozen=True)
class Series:
    """The samples of one labelled series."""

    label: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)


@dataclass(frozen=True)
class Measurement:
    """One measured result of a runbook, checked against the schema."""

    runbook: str
    name: str
    unit: str
    series: tuple[Series, ...]
    title: str = ""


@dataclass(frozen=True)
class Plot:
    """A measurement and the SVG file drawn for it."""

    measurement: Measurement
    path: Path
    written: bool


# ---------------------------------------------------------------------------------------------
# The schema


def parse(runbook: str, key: str, raw: object) -> Measurement:
    """Measurement ``key`` of ``runbook`` as found in the report; a MeasurementError if invalid."""

    def bad(problem: str) -> MeasurementError:
        return MeasurementError(f"runbook {runbook}: measurement {key!r} {problem}", hint=HINT)

    if not isinstance(raw, Mapping):
        kind = type(raw).__name__
        raise bad(f"must be an object with name, unit and series, not a {kind}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise bad(f"lacks {', '.join(repr(k) for k in missing)}")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        allowed = ", ".join((*REQUIRED, *OPTIONAL))
        raise bad(f"has unknown key(s) {', '.join(map(repr, unknown))}; allowed are {allowed}")

    name, unit, title = raw["name"], raw["unit"], raw.get("title", "")
    if not isinstance(name, str) or not name.strip():
        raise bad(f"has name {name!r}; it must be a non-empty string")
    if name != key:
        raise bad(f"is filed under {key!r} but named {name!r}; the two must agree")
    if not isinstance(unit, str):
        raise bad(f'has unit {unit!r}; it must be a string ("" for a plain number)')
    if not isinstance(title, str):
        raise bad(f"has title {title!r}; it must be a string")
    return Measurement(runbook, name, unit.strip(), parse_series(raw["series"], bad), title)


def parse_series(raw: object, bad) -> tuple[Series, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise bad("has no series: give an object mapping each label to a list of samples")
    series = []
    for label, samples in raw.items():
        if not isinstance(label, str) or not label.strip():
            raise bad(f"has a series labelled {label!r}; labels must be non-empty strings")
        if not isinstance(samples, Sequence) or isinstance(samples, str) or not samples:
            raise bad(f"series {label!r} must be a non-empty list of numbers, not {samples!r}")
        for i, sample in enumerate(samples, 1):
            if not is_number(sample):
                raise bad(f"series {label!r} sample {i} is {sample!r}, not a finite number")
        series.append(Series(label, tuple(float(s) for s in samples)))
    return tuple(series)


def is_number(value: object) -> bool:
    # bool is an int to Python, but true/false in JSON is never a sample.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_all(runbook: str, measurements: Mapping) -> list[Measurement]:
    """Every measurement of ``runbook``, in the report's order."""
    return [parse(runbook, key, raw) for key, raw in measurements.items()]


# ---------------------------------------------------------------------------------------------
# Numbers and tables


def number(value: float) -> str:
    """``value`` with three significant digits, never in exponent notation (1234 stays 1234)."""
    if value == 0:
        return "0"
    digits = math.floor(math.log10(abs(value))) + 1
    return f"{value:.{max(0, 3 - digits)}f}"


def with_unit(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit else text


def caption(m: Measurement) -> str:
    return m.title or m.name


def table(m: Measurement) -> list[str]:
    """The plotted numbers as a Markdown table: one row per series (the unit is in the caption)."""
    lines = ["| Series | Median | Min | Max | Samples |", "|---|--:|--:|--:|--:|"]
    for s in m.series:
        label = html.escape(" ".join(s.label.split()), quote=False).replace("|", "\\|")
        lines.append(
            f"| {label} | {number(s.median)} | {number(s.low)} | {number(s.high)} "
            f"| {len(s.samples)} |"
        )
    return lines


def alt_text(m: Measurement) -> str:
    """What the plot shows, for readers who cannot see it."""
    medians = "; ".join(f"{s.label}: {number(s.median)} {m.unit}".rstrip() for s in m.series)
    return f"{caption(m)}, median per series ({medians})"


# ---------------------------------------------------------------------------------------------
# Drawing


def svg(m: Measurement) -> str:
    """The plot of ``m`` as SVG text; the same measurement always gives the same text."""
    # Imported here: matplotlib is needed only when a runbook has measurements.
    import matplotlib
    from matplotlib.figure import Figure

    rows = len(m.series)
    style = {
        "svg.hashsalt": "proven",  # fixed element ids, so an unchanged plot is not rewritten
        "svg.fonttype": "none",  # text stays text: smaller, and in the reader's font
        "font.family": "sans-serif",
        "font.size": 10,
    }
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(7.0, 1.3 + 0.45 * rows), facecolor="white", layout="constrained")
        ax = fig.add_subplot()
        # Top to bottom in the report's order, like the table beside it.
        ys = list(range(rows - 1, -1, -1))
        medians = [s.median for s in m.series]
        ax.barh(ys, medians, height=0.6, color=BAR_COLOUR, label="median", zorder=2)
        ax.hlines(
            ys,
            [s.low for s in m.series],
            [s.high for s in m.series],
            color=RANGE_COLOUR,
            linewidth=1.5,
            label="min to max",
            zorder=3,
        )
        for y, s in zip(ys, m.series, strict=True):
            ax.plot(
                s.samples,
                [y] * len(s.samples),
                linestyle="none",
                marker="o",
                markersize=3.5,
                color=SAMPLE_COLOUR,
                alpha=0.8,
                zorder=4,
                label="samples" if y == ys[0] else None,
            )
            ax.annotate(
                f"median {number(s.median)}",
                (s.high, y),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
            )
        ax.set_yticks(ys, [s.label for s in m.series])
        ax.set_xlabel(with_unit(m.name, m.unit))
        # Bars start at zero; the space right of the largest sample holds its median label.
        low = min(0.0, *(s.low for s in m.series))
        high = max(0.0, *(s.high for s in m.series))
        ax.set_xlim(low, high + 0.22 * ((high - low) or 1.0))
        ax.grid(axis="x", color="#e0e0e0", zorder=0)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        # In the order a reader meets them: the bar, then the range, then the dots on it.
        handles, labels = ax.get_legend_handles_labels()
        order = [labels.index(label) for label in ("median", "min to max", "samples")]
        ax.legend(
            [handles[i] for i in order],
            [labels[i] for i in order],
            loc="lower right",
            fontsize=8,
            frameon=False,
            ncols=3,
            bbox_to_anchor=(1, 1),
        )

        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def file_name(m: Measurement, taken: set[str]) -> str:
    """A file name for ``m``'s plot that no other plot of this build uses."""
    stem = re.sub(r"[^a-z0-9]+", "-", f"{m.runbook}-{m.name}".lower()).strip("-")
    name, n = f"{stem}.svg", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.svg"
    taken.add(name)
    return name


def write(measurements: Sequence[Measurement], plots_dir: Path, taken: set[str]) -> list[Plot]:
    """Draw each measurement into ``plots_dir``, leaving files whose content is unchanged."""
    drawn = []
    for m in measurements:
        path = plots_dir / file_name(m, taken)
        text = svg(m)
        written = not (path.exists() and path.read_text(encoding="utf-8") == text)
        if written:
            plots_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        drawn.append(Plot(m, path, written))
    return drawn


def remove_stale(plots_dir: Path, keep: set[Path]) -> None:
    """Drop plots of measurements that are no longer in the report (the folder is generated)."""
    for path in plots_dir.glob("*.svg"):
        if path not in keep:
            path.unlink()


# ---------------------------------------------------------------------------------------------
# Page text


def section(plots: Sequence[Plot], src: str, *, markdown_image: bool) -> list[str]:
    """Each plot with its table, for a page; ``src`` is the plots folder's address from it.

    Markdown pages take a Markdown image, whose link mkdocs checks and rewrites; notebook pages
    bypass that rewriting and take an ``<img>`` with the site address.
    """
    lines = []
    for plot in plots:
        m = plot.measurement
        href = f"{src}{plot.path.name}"
        alt = alt_text(m)
        if markdown_image:
            safe_alt = alt.replace("[", "(").replace("]", ")")
            image = f"![{safe_alt}]({href}){{ .proven-plot loading=lazy }}"
        else:
            image = (
                f'<img class="proven-plot" src="{html.escape(href)}" '
                f'alt="{html.escape(alt)}" loading="lazy">'
            )
        title = html.escape(caption(m), quote=False)
        unit = f" ({html.escape(m.unit, quote=False)})" if m.unit else ""
        lines += [f"**{title}**{unit}", "", image, "", *table(m), ""]
    return lines
