"""Tabs and admonitions on guide pages: Markdown blocks rendered with the site's extensions.

Guide pages are notebooks, and mkdocs-jupyter renders their Markdown cells with nbconvert's own
Markdown (mistune), which knows none of the extensions in mkdocs.yml: a tab set (``=== "Then"``)
or an admonition (``!!! warning``) would come out as a paragraph and a code block. So
:func:`render_notebook` finds those blocks in the Markdown cells of a page notebook and renders
them to HTML with Python-Markdown, with the extensions and settings mkdocs renders the site's
Markdown pages with; the HTML takes the block's place in the cell, and nbconvert passes an HTML
block through untouched. Material's CSS and JavaScript then style the admonitions and switch the
tabs as on any other page.

Only those blocks are rendered; the rest of a cell stays Markdown. Headings outside them keep the
ids and permalinks nbconvert gives every heading of the page, and the page's table of contents,
which mkdocs-jupyter reads from the cells' Markdown, still lists them.

A block starts at a line that opens a tab (``=== "Title"``), an admonition (``!!! type``) or a
collapsible admonition (``??? type``) at the left margin, outside a fenced code block, and takes
in the indented lines, blank lines and further such opening lines after it. Its first line at the
left margin that opens nothing ends it, as Python-Markdown itself would.

A changed cell keeps its Markdown as written in its metadata (``proven.markdown``), and
:func:`restore_file` puts it back into the copy of the notebook that the page offers for
download, so that readers who open it in Jupyter read the Markdown, not the HTML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from proven.errors import ProvenError

# A line that opens a tab (pymdownx.tabbed: ===, ===!, ===+), an admonition (!!!) or a
# collapsible admonition (pymdownx.details: ???, ???+).
OPENING = re.compile(r"(?:={3}[!+]{0,2}|!{3}|\?{3}\+?)[ \t]")
INDENTED = re.compile(r"(?: {4}|\t)")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Put between the blocks of one notebook, which are rendered in one run so that tab sets get
# ids that are unique on the page (pymdownx.tabbed numbers them per run).
SEPARATOR = "<!-- proven: next block -->"
# Cell metadata under which a rendered cell keeps its Markdown as written.
METADATA = "proven"


class MarkdownError(ProvenError):
    """The site's Markdown settings cannot be read, or a block did not render."""


@dataclass(frozen=True)
class Settings:
    """The Markdown extensions and their settings, as mkdocs renders the site's pages."""

    extensions: Sequence = ()
    configs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, config) -> Settings:
        """The settings of a loaded mkdocs config (with mkdocs' built-in extensions)."""
        return cls(tuple(config.markdown_extensions), dict(config.mdx_configs))

    @classmethod
    def load(cls, config_file: Path) -> Settings:
        """The settings in ``config_file``, read and checked by mkdocs itself."""
        try:
            from mkdocs.config import load_config
            from mkdocs.exceptions import ConfigurationError
        except ImportError as err:
            raise MarkdownError(
                "guide pages use tabs or admonitions, but mkdocs is missing",
                hint="pip install -e '.[docs]', then build again",
            ) from err
        if not config_file.is_file():
            raise MarkdownError(
                f"guide pages use tabs or admonitions, but {config_file} is missing",
                hint="build from the project root, where mkdocs.yml is",
            )
        try:
            return cls.of(load_config(str(config_file)))
        except ConfigurationError as err:
            raise MarkdownError(f"{config_file} cannot be read: {err}") from err


def split(source: str) -> list[tuple[bool, str]]:
    """``source`` cut into pieces: (True, block for the extensions) or (False, plain Markdown)."""
    pieces: list[tuple[bool, list[str]]] = []
    fence = ""  # the fence of the code block the plain Markdown is in, if any
    for line in source.split("\n"):
        in_block = bool(pieces) and pieces[-1][0]
        if in_block and (not line.strip() or INDENTED.match(line) or OPENING.match(line)):
            pieces[-1][1].append(line)
            continue
        if not fence and OPENING.match(line):
            pieces.append((True, [line]))
            continue
        if fence:
            closing = line.strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                fence = ""
        elif opened := FENCE.match(line):
            fence = opened.group(1)
        if not pieces or in_block:
            pieces.append((False, []))
        pieces[-1][1].append(line)
    return [(is_block, "\n".join(lines).strip("\n")) for is_block, lines in pieces]


def render(blocks: Sequence[str], settings: Settings) -> list[str]:
    """Each of ``blocks`` as HTML, rendered in one Python-Markdown run with ``settings``."""
    try:
        import markdown
    except ImportError as err:
        raise MarkdownError(
            "guide pages use tabs or admonitions, but Python-Markdown is missing",
            hint="pip install -e '.[docs]', then build again",
        ) from err
    md = markdown.Markdown(extensions=list(settings.extensions), extension_configs=settings.configs)
    text = md.convert(f"\n\n{SEPARATOR}\n\n".join(blocks))
    html = [part.strip("\n") for part in text.split(SEPARATOR)]
    if len(html) != len(blocks):
        raise MarkdownError(
            f"{len(blocks)} tab or admonition blocks rendered as {len(html)} pieces",
            hint=f"a block must not contain the line {SEPARATOR}",
        )
    return [without_blank_lines(h) for h in html]


def without_blank_lines(html: str) -> str:
    """``html`` with no blank line, so that nbconvert's Markdown keeps it one HTML block.

    A blank line ends an HTML block in CommonMark, and what follows it would be read as
    Markdown again. Blank lines occur only inside ``<pre>``, where the line break is written
    as ``&#10;`` instead: the browser shows the same text.
    """
    return re.sub(r"\n([ \t]*)\n", lambda m: f"\n{m.group(1)}&#10;", html)


def render_notebook(
    nb: nbformat.NotebookNode, settings: Settings | Callable[[], Settings] | None
) -> int:
    """Render the tab and admonition blocks of ``nb``'s Markdown cells in place.

    Cells without such blocks are left as they are. ``settings`` may be a function that
    returns them, called only when a cell has a block. Returns the number of cells changed.
    """
    # Shortcoming: a heading inside a tab or an admonition is not in the page's table of
    # contents (mkdocs-jupyter reads it from Markdown, and the block is HTML by then), and a
    # block nested in a list item is left to nbconvert; no guide needs either yet.
    cells = [(c, split(c.source)) for c in nb.cells if c.cell_type == "markdown"]
    cells = [(c, pieces) for c, pieces in cells if any(is_block for is_block, _ in pieces)]
    if not cells:
        return 0
    if callable(settings):
        settings = settings()
    if settings is None:
        raise MarkdownError(
            "a Markdown cell has tabs or admonitions, but no Markdown settings were given",
            hint="pass the site's settings: proven.site_markdown.Settings.of(config)",
        )

    blocks = [text for _, pieces in cells for is_block, text in pieces if is_block]
    rendered = iter(render(blocks, settings))
    for cell, pieces in cells:
        parts = [next(rendered) if is_block else text for is_block, text in pieces]
        # A cell whose links proven.site rewrote already keeps its Markdown as written.
        cell.metadata.setdefault(METADATA, {}).setdefault("markdown", cell.source)
        cell.source = "\n\n".join(part for part in parts if part)
    return len(cells)


def restore(nb: nbformat.NotebookNode) -> int:
    """Put the Markdown as written back into the cells :func:`render_notebook` changed."""
    restored = 0
    for cell in nb.cells:
        kept = cell.metadata.get(METADATA, {})
        if cell.cell_type == "markdown" and "markdown" in kept:
            cell.source = kept["markdown"]
            del cell.metadata[METADATA]
            restored += 1
    return restored


def restore_file(path: Path) -> bool:
    """:func:`restore` the notebook at ``path`` in place; whether it had cells to restore."""
    nb = nbformat.read(path, as_version=4)
    if not restore(nb):
        return False
    nbformat.write(nb, path)
    return True
