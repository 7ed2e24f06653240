"""mkdocs hooks: write the generated pages before each build; the work is in proven.site."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

try:
    from proven import anchors, site, site_markdown
except ImportError:  # building from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from proven import anchors, site, site_markdown

log = logging.getLogger("mkdocs.hooks.proven")
# Each build's pages, for the check of links to sections of notebook pages.
built = anchors.Anchors()


def on_pre_build(config) -> None:
    """Write docs/guides/NN-slug.ipynb and docs/report.md; fail the build on a SiteError."""
    root = Path(config.config_file_path).resolve().parent
    built.pages.clear()
    try:
        pages = site.generate(
            Path(config.docs_dir),
            root,
            site.report_path(root),
            directory_urls=config.use_directory_urls,
            # Tabs and admonitions in guides render with the extensions of the site's pages.
            markdown=site_markdown.Settings.of(config),
        )
    except site.SiteError as err:
        raise PluginError(str(err)) from err
    for page in pages:
        verdict = f"{page.badge.label}: " if page.badge else ""
        action = "wrote" if page.written else "unchanged"
        log.info("%s%s %s (from %s)", verdict, action, page.path.name, page.source or "nothing")


def on_post_page(output: str, page, config) -> str:
    """The page's notebook offered for download gets its tabs and admonitions as Markdown back.

    mkdocs-jupyter copies the notebook beside the page in its own on_post_page, which runs
    before this hook's.
    """
    source = Path(page.file.abs_src_path or "")
    if source.suffix == ".ipynb" and page.file.abs_dest_path:
        copy = Path(page.file.abs_dest_path).parent / source.name
        if copy.exists() and site_markdown.restore_file(copy):
            log.debug("restored the Markdown of %s", copy)
    built.add(page.url, page.file.src_uri, output)
    return output


def on_post_build(config) -> None:
    """Fail the build on a link to a section that its page does not have."""
    broken = built.broken()
    if broken:
        raise PluginError("links to missing sections:\n  " + "\n  ".join(broken))


def on_serve(server, config, builder):
    """Rebuild when a runbook or the report changes, not only when docs/ does."""
    root = Path(config.config_file_path).resolve().parent
    # The report's folder holds VM images too: watch only its top level, where the report is.
    for path, recursive in ((root / "runbooks", True), (site.report_path(root).parent, False)):
        if path.is_dir():
            server.watch(str(path), recursive=recursive)
    return server
