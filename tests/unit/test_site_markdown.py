"""Tabs and admonitions in guide notebooks, rendered with the site's Markdown extensions."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from proven import site, site_markdown
from proven.guides import ROOT, Guide

THEN_AND_NOW = """\
## Then and now

=== "Then"

    The post ran `MaxClients 128`.

=== "Now"

    Apache 2.4 calls it `MaxRequestWorkers`.

!!! warning "Mind the limit"

    Bodies over 128 KiB fail.

More text after."""
PLAIN = "## 1. Install Apache\n\nNothing but Markdown here:\n\n    === indented code\n"


@pytest.fixture(scope="module")
def settings() -> site_markdown.Settings:
    """The real site's settings, read from mkdocs.yml by mkdocs."""
    return site_markdown.Settings.load(ROOT / "mkdocs.yml")


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "bash", "language": "bash", "display_name": "Bash"}
    nb.cells = [nbformat.v4.new_markdown_cell(s) for s in sources]
    nb.cells.append(nbformat.v4.new_code_cell("echo done"))
    return nb


def page_html(nb: nbformat.NotebookNode, tmp_path: Path) -> str:
    """The page body mkdocs-jupyter makes of ``nb``, as in the site build."""
    from mkdocs_jupyter import convert

    path = tmp_path / "page.ipynb"
    nbformat.write(nb, path)
    return convert.nb2html(str(path), no_prompt=True)


def test_settings_are_the_markdown_extensions_of_mkdocs_yml(settings):
    """Every extension mkdocs.yml lists is used, with the options it gives there."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    for entry in config["markdown_extensions"]:
        name, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        assert name in settings.extensions
        assert settings.configs.get(name, {}) == (options or {})


def test_a_tab_set_and_an_admonition_become_material_html(settings):
    """A cell with both becomes the HTML pymdownx and admonition write for material."""
    nb = notebook(THEN_AND_NOW)

    changed = site_markdown.render_notebook(nb, settings)

    source = nb.cells[0].source
    assert changed == 1
    assert '<div class="tabbed-set tabbed-alternate" data-tabs="1:2">' in source
    assert '<label for="__tabbed_1_1">Then</label><label for="__tabbed_1_2">Now</label>' in source
    assert "<p>Apache 2.4 calls it <code>MaxRequestWorkers</code>.</p>" in source
    assert '<div class="admonition warning">' in source
    assert '<p class="admonition-title">Mind the limit</p>' in source
    assert "=== " not in source and "!!! " not in source


def test_a_cell_without_tabs_or_admonitions_is_left_alone(settings):
    """Plain Markdown, even an indented line that looks like a tab, is not touched."""
    nb = notebook(PLAIN)

    changed = site_markdown.render_notebook(nb, settings)

    assert changed == 0
    assert nb.cells[0].source == PLAIN
    assert "proven" not in nb.cells[0].metadata


def test_no_settings_are_needed_when_no_cell_has_a_block():
    """Settings are asked for only when a cell needs them."""

    def no_settings() -> site_markdown.Settings:
        raise AssertionError("settings were loaded for a notebook without blocks")

    assert site_markdown.render_notebook(notebook(PLAIN), no_settings) == 0


def test_headings_around_the_blocks_stay_markdown(settings):
    """Only the blocks turn into HTML: the heading before and the text after stay as written."""
    nb = notebook(THEN_AND_NOW)

    site_markdown.render_notebook(nb, settings)

    source = nb.cells[0].source
    assert source.startswith("## Then and now\n\n<div")
    assert source.endswith("</div>\n\nMore text after.")


def test_a_heading_keeps_its_id_and_its_place_in_the_table_of_contents(settings, tmp_path):
    """On the built page the heading has the id mkdocs-jupyter's table of contents links to."""
    from mkdocs_jupyter.plugin import get_nb_toc

    nb = notebook("# A guide", THEN_AND_NOW, "## Before you start\n\n!!! note\n    Be root.")
    site_markdown.render_notebook(nb, settings)

    html = page_html(nb, tmp_path)
    toc, _ = get_nb_toc(str(tmp_path / "page.ipynb"), 6)

    headings = [(item.id, item.title) for h1 in toc for item in h1.children]
    assert headings == [("then-and-now", "Then and now"), ("before-you-start", "Before you start")]
    for anchor, _ in headings:
        assert re.search(f'<h2 id="{anchor}">[^<]*<a class="anchor-link" href="#{anchor}"', html)


def test_the_page_keeps_the_blocks_as_html_and_the_rest_as_markdown(settings, tmp_path):
    """nbconvert passes the blocks' HTML through and renders the Markdown after them."""
    nb = notebook(THEN_AND_NOW)
    site_markdown.render_notebook(nb, settings)

    html = page_html(nb, tmp_path)

    assert '<div class="tabbed-set tabbed-alternate"' in html
    assert '<div class="admonition warning">' in html
    assert "<p>More text after.</p>" in html
    assert "=== &quot;" not in html and "!!! warning" not in html


def test_blank_lines_in_code_inside_a_tab_survive_nbconvert(settings, tmp_path):
    """A blank line in a code block would end the HTML block; the code keeps it all the same."""
    nb = notebook(
        '=== "Now"\n\n    ```sh\n    apt-get update\n\n    apt-get install apache2\n    ```'
    )
    site_markdown.render_notebook(nb, settings)

    html = page_html(nb, tmp_path)

    assert not re.search(r"\n[ \t]*\n", nb.cells[0].source)
    code = re.search(r"<pre>(.*?)</pre>", html[html.index("tabbed-set") :], re.S).group(1)
    assert re.sub(r"<[^>]+>", "", code) == "apt-get update\n\napt-get install apache2\n"


def test_tab_sets_in_different_cells_get_ids_unique_on_the_page(settings):
    """Each tab set has its own radio buttons, so switching one does not switch another."""
    nb = notebook(THEN_AND_NOW, '=== "A"\n    a\n=== "B"\n    b')

    site_markdown.render_notebook(nb, settings)

    ids = re.findall(r'<input[^>]* id="([^"]+)"', nb.cells[0].source + nb.cells[1].source)
    assert ids == ["__tabbed_1_1", "__tabbed_1_2", "__tabbed_2_1", "__tabbed_2_2"]


def test_opening_lines_inside_a_fenced_code_block_are_left_alone():
    """``!!! note`` shown as code is code, not an admonition."""
    source = 'Write this:\n\n```markdown\n!!! note\n    text\n=== "Tab"\n```\n\nDone.'

    assert site_markdown.split(source) == [(False, source)]


def test_a_block_ends_at_the_first_line_back_at_the_left_margin():
    """Indented and blank lines belong to the block; an unindented line does not."""
    source = '!!! tip\n    one\n\n    two\n\n=== "A"\n    a\nafter\n\n    code'

    pieces = site_markdown.split(source)

    assert pieces == [
        (True, '!!! tip\n    one\n\n    two\n\n=== "A"\n    a'),
        (False, "after\n\n    code"),
    ]


def test_the_downloaded_copy_gets_the_markdown_as_written(settings, tmp_path):
    """restore_file puts each rendered cell's Markdown back and drops the bookkeeping."""
    nb = notebook("# A guide", THEN_AND_NOW)
    site_markdown.render_notebook(nb, settings)
    path = tmp_path / "copy.ipynb"
    nbformat.write(nb, path)

    assert site_markdown.restore_file(path)

    restored = nbformat.read(path, as_version=4)
    assert [c.source for c in restored.cells[:2]] == ["# A guide", THEN_AND_NOW]
    assert all("proven" not in c.metadata for c in restored.cells)
    assert not site_markdown.restore_file(path)


# ---------------------------------------------------------------------------------------------
# In the page generation


def guide_project(tmp_path: Path) -> tuple[Path, Guide]:
    """A project whose one runbook has a tab set, and no report."""
    guide = Guide(slug="03-apache-fcgid", title="Serve PHP")
    runbook = tmp_path / "runbooks" / f"{guide.slug}.ipynb"
    runbook.parent.mkdir(parents=True)
    nbformat.write(notebook("# Serve PHP", THEN_AND_NOW), runbook)
    return tmp_path, guide


def test_guide_pages_render_tabs_with_the_settings_mkdocs_passes(settings, tmp_path):
    """generate() renders a runbook's tab set; the badge and Verification cells are Markdown."""
    root, guide = guide_project(tmp_path)

    site.generate(
        root / "docs", root, root / "none.json", head="0" * 40, guides=(guide,), markdown=settings
    )

    page = nbformat.read(root / "docs" / "guides" / f"{guide.slug}.ipynb", as_version=4)
    assert '<div class="tabbed-set tabbed-alternate"' in page.cells[2].source
    assert page.cells[0].id == site.BADGE_CELL_ID
    assert page.cells[-1].source.startswith("## Verification")


def test_guide_pages_with_tabs_need_mkdocs_yml_when_mkdocs_passes_no_settings(tmp_path):
    """Without settings, generate() reads mkdocs.yml; a missing one stops the build by name."""
    root, guide = guide_project(tmp_path)

    with pytest.raises(site.SiteError, match=re.escape(str(root / "mkdocs.yml"))):
        site.generate(root / "docs", root, root / "none.json", head="0" * 40, guides=(guide,))
