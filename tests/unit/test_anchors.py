"""Links to sections of other pages: found, missing, or not a page of the site."""

from __future__ import annotations

from proven.anchors import Anchors


def site(**pages: str) -> Anchors:
    anchors = Anchors()
    for url, html in pages.items():
        anchors.add(url.replace("_", "/") if url != "home" else "", f"{url}.md", html)
    return anchors


def test_link_to_an_existing_section_passes():
    """A relative link whose anchor is an id on the target page is fine."""
    found = site(
        home='<a href="guides/a/#steps">steps</a>',
        guides_a_='<h2 id="steps">Steps</h2><a href="../b/#x">b</a><a href="#steps">up</a>',
        guides_b_='<a name="x"></a>',
    )

    assert found.broken() == []


def test_link_to_a_missing_section_names_page_link_and_target():
    """A missing anchor is reported with the linking page and the page it looked on."""
    found = site(home='<a href="guides/a/#gone">x</a>', guides_a_='<h2 id="steps">S</h2>')

    assert found.broken() == ["home.md: link guides/a/#gone finds no section #gone on /guides/a/"]


def test_links_outside_the_pages_are_left_to_others():
    """Other sites, plain files and links without an anchor are not this check's business."""
    found = site(
        home='<a href="https://example.org/#x">e</a><a href="plots/p.svg#y">p</a><a href="a/">a</a>'
    )

    assert found.broken() == []
