"""Sessions: `verify` is the main job; `tests` is what CI runs. A bare `nox` stays cheap."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "unit"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# mkdocs-material prints a notice about MkDocs 2 on every build; it is not about this site.
QUIET_MKDOCS = {"NO_MKDOCS_2_WARNING": "1"}


def install(session: nox.Session, extras: str = "docs") -> None:
    session.install("--quiet", "--upgrade", "pip")
    session.install("--quiet", "-e", f".[{extras}]")


@nox.session(python=PYTHON)
def verify(session: nox.Session) -> None:
    """Prove the guides on a fresh lab VM, check it, and build the site (needs root)."""
    install(session)
    # Ctrl-C: wait for verify to destroy the VM (nox would kill it after half a second).
    session.run("proven", "verify", *session.posargs, interrupt_timeout=None)


@nox.session(python=PYTHON)
def benchmark(session: nox.Session) -> None:
    """Time a full verify, nothing carried over: seconds per phase and runbook, peak memory."""
    install(session)
    session.run("proven", "verify", "--force", *session.posargs, success_codes=[0, 1])
    session.run("python", "tools/benchmark.py")


@nox.session(python=PYTHON)
def savings(session: nox.Session) -> None:
    """Time the storage guide with each speed saving of the lab undone in turn (~25 min)."""
    install(session)
    session.run("python", "tools/savings.py", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Every test: unit tests, then the real pipeline on real VMs (slow, needs root)."""
    install(session, "docs,browser")
    session.run("pytest", "tests/unit", "tests/browser", "tests/pipeline", *session.posargs)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Unit tests only: no VM, a few seconds."""
    install(session)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site from the last report, without a VM (unverified pages say so)."""
    install(session)
    session.run("mkdocs", "build", "--strict", *session.posargs, env=QUIET_MKDOCS)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Live preview of the site on http://127.0.0.1:8000 for writers."""
    install(session)
    session.run(
        "mkdocs", "serve", "--dev-addr", "127.0.0.1:8000", *session.posargs, env=QUIET_MKDOCS
    )


@nox.session(python=PYTHON)
def lab(session: nox.Session) -> None:
    """A lab VM and JupyterLab on 127.0.0.1 to run the runbooks cell by cell (needs root)."""
    install(session, "lab")
    # Ctrl-C reaches `proven lab` as well; nox must wait for its teardown, not kill it.
    session.run("proven", "lab", *session.posargs, interrupt_timeout=None)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the code, and a check that runbooks are committed without outputs."""
    session.install("--quiet", "ruff")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py")
    session.run("python", "tools/check_runbooks.py", *session.posargs)
