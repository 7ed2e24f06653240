"""Browser tests: Debian's Chromium, driven by Playwright, reads the built site over HTTP.

Playwright's own browser downloads are never used: the browser is /usr/bin/chromium from
Debian, installed here when missing and the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
APT_INSTALL = "apt-get install -y --no-install-recommends chromium"
# Headless and quiet: no GPU, no calls home, no first-run or sync, nothing but the local site.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# Wide enough for mkdocs-material to show the navigation sidebar beside the page.
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt when it is missing and we are root."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.fail(
            f"Debian's Chromium is missing ({CHROMIUM}); install it as root with: "
            f"apt-get update && DEBIAN_FRONTEND=noninteractive {APT_INSTALL}",
            pytrace=False,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # The package lists may be missing or stale on a fresh machine: refresh them first.
    for command in (["apt-get", "update"], APT_INSTALL.split()):
        print(f"browser tests: {CHROMIUM} is missing, running: {' '.join(command)}")
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr[-2000:]}",
                pytrace=False,
            )
    if not CHROMIUM.exists():
        pytest.fail(f"{APT_INSTALL} succeeded but {CHROMIUM} is still missing", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """build/test-artifacts/browser/, emptied once per session so no old screenshot remains."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_served(proc: subprocess.Popen, url: str, timeout: float = 10.0) -> bool:
    """Whether ``url`` answers before ``timeout``; False as soon as the server has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen) -> None:
    """End the server this test started, by its PID."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def serve() -> Iterator:
    """``serve(folder)`` serves ``folder`` on 127.0.0.1 and returns its base URL."""
    started: list[subprocess.Popen] = []

    def start(folder: Path) -> str:
        # A port can be taken between choosing it and binding it: try a few.
        for _ in range(3):
            port = free_port()
            command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
            proc = subprocess.Popen(
                command,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            started.append(proc)
            url = f"http://127.0.0.1:{port}/"
            if wait_until_served(proc, url):
                return url
            stop(proc)
        errors = started[-1].stderr.read().decode(errors="replace")[-2000:]
        pytest.fail(f"python -m http.server did not start for {folder}:\n{errors}", pytrace=False)

    yield start

    for proc in started:
        stop(proc)
        proc.stderr.close()


@pytest.fixture(scope="module")
def browser(chromium: Path, tmp_path_factory) -> Iterator:
    """A Chromium context with a fresh profile that may reach 127.0.0.1 and nothing else.

    ``browser.outside`` lists the requests it refused (a page reaching the internet).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright for Python is missing: pip install -e '.[browser]' "
            "(its browser downloads are not needed: the tests use Debian's Chromium)",
            pytrace=False,
        )

    outside: list[str] = []

    def local_only(route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", local_only)
        context.outside = outside
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh tab; an error if its pages raised a JavaScript error or reached past the site."""
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    already_refused = len(browser.outside)
    yield tab
    tab.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    # Fonts, scripts and images all come from the site itself: readers' browsers call no one.
    outside = browser.outside[already_refused:]
    assert not outside, f"the page asked for addresses outside the site: {outside}"
