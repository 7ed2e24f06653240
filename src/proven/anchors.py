"""Anchors on the built site: a link to a section of another page must find that section.

mkdocs checks anchors in links between Markdown pages, and the htmlproofer plugin checks links
within a page and to other pages; neither looks inside a notebook page (mkdocs-jupyter) for the
section a link names. ``docs/hooks.py`` feeds every built page to :class:`Anchors` and fails the
build on what :meth:`Anchors.broken` finds.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Any absolute base will do: links are resolved against it, then it is taken off again.
BASE = "https://site.invalid/"


class _Scan(HTMLParser):
    """The ids a page offers and the links it holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])


@dataclass
class Anchors:
    """Every built page's ids and links, by the page's site URL."""

    pages: dict[str, tuple[str, set[str], list[str]]] = field(default_factory=dict)

    def add(self, url: str, source: str, html: str) -> None:
        scan = _Scan()
        scan.feed(html)
        self.pages[url] = (source, scan.ids, scan.links)

    def broken(self) -> list[str]:
        """One line per link whose page exists but has no element with the link's anchor."""
        found = []
        for url, (source, _, links) in sorted(self.pages.items()):
            for href in links:
                target = urllib.parse.urljoin(BASE + url, href)
                path, _, fragment = target.partition("#")
                if not fragment or not path.startswith(BASE):
                    continue
                page = path.removeprefix(BASE).removesuffix("index.html")
                if page not in self.pages:
                    continue  # not a page (a plot, a download), or a page mkdocs reports itself
                if urllib.parse.unquote(fragment) not in self.pages[page][1]:
                    found.append(f"{source}: link {href} finds no section #{fragment} on /{page}")
        return found
