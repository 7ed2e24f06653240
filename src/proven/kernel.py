"""The ``proven-shell`` Jupyter kernel: each cell runs as a bash script on the runbook target.

Each step is a fresh shell, like a reader who pastes the parameters and then one step into a
terminal. Nothing carries over from one cell to the next (a ``cd``, an ``export``, a function)
except definition cells: cells of only comments, blank lines and ``NAME=value`` assignments, such
as the runbook's parameters cell and the cell papermill injects. They are run once to check them,
then prepended to every later cell.

A cell fails when any command in it fails (``set -Eeuo pipefail`` and an ERR trap that names the
command), and also when it calls ``exit``, even ``exit 0``: the plain bash kernel reports success
in both cases, so a runbook could "pass" without running its last commands. (A cell that sets
its own ERR or EXIT trap replaces the kernel's and loses these checks.) An interrupt or the time
limit stops the step's processes here and on the target.

The target comes from the environment: ``PROVEN_TARGET`` (``local`` or ``ssh``),
``PROVEN_SSH_CONFIG`` and ``PROVEN_SSH_HOST`` for ssh, ``PROVEN_NETNS`` (run ssh inside that
network namespace), ``PROVEN_SUDO=1`` (run as root with ``sudo -n``) and ``PROVEN_STEP_TIMEOUT``
(seconds one cell may take, 1800 by default).

Install the kernelspec with ``python -m proven.kernel install [--user | --prefix P]``; Jupyter
starts it as ``python -m proven.kernel -f CONNECTION_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import functools
import json
import logging
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ipykernel.kernelbase import Kernel

from proven import __version__

log = logging.getLogger("proven")

NAME = "proven-shell"
SPEC = {
    "display_name": "Shell on the runbook target",
    "language": "bash",
    "interrupt_mode": "signal",
}
# Lines the cell script prints for the kernel (and the reader) to see why a step failed.
REASON = re.compile(r"^runbook: (.*)$", re.MULTILINE)
TIMEOUT_STATUS = (124, 137)  # timeout(1): the limit expired; 137 when it needed SIGKILL
SSH_LOST = 255  # ssh exits with this when the connection fails or drops

# A word of a simple assignment's value: quotes, escapes, $VAR and arithmetic $(( )), but no
# command substitution, so a definition cell can be evaluated anywhere without running anything.
_ARITH = r"""\$\(\((?:[^()`$]|\$(?!\()|\([^()`$]*\))*\)\)"""
_WORD = (
    r"""(?:'[^']*'|"(?:[^"\\$`]|\\.|\$(?!\())*"|\\.|"""
    + _ARITH
    + r"""|\$(?!\()|[^\s'"\\$`;&|<>()#])*"""
)
_ASSIGN = rf"(?:export[ \t]+)?([A-Za-z_]\w*)=(\((?:\s*{_WORD})*\s*\)|{_WORD})"
ASSIGNMENT = re.compile(_ASSIGN)  # groups: the name and its value as written
_LINE = rf"[ \t]*(?:{_ASSIGN}(?:[ \t]+{_ASSIGN})*[ \t]*)?(?:#[^\n]*)?"
_DEFINITIONS = re.compile(rf"(?:{_LINE}(?:\n|;|$))*")

# The prelude shares the cell's first line, so bash's own "line N" messages and $LINENO in
# the ERR trap count the cell's lines. Only the top-level shell reports a failed command: a
# subshell's failure is reported once more by the command that started it.
_PRELUDE = (
    "set -Eeuo pipefail; exec 2>&1 </dev/null; __rb_done=0 __rb_failed=0; "
    """trap '__rb_rc=$?; __rb_failed=1; if [ "$BASH_SUBSHELL" = 0 ]; then """
    """printf "runbook: command failed (exit %s): %s (line %s)\\n" """
    """"$__rb_rc" "$BASH_COMMAND" "$LINENO"; fi' ERR; """
    """trap '__rb_rc=$?; if [ "$__rb_done" != 1 ] && [ "$__rb_failed" != 1 ]; then """
    """printf "runbook: step called exit %s before its last line """
    """(or bash stopped on an error shown above)\\n" "$__rb_rc"; """
    """[ "$__rb_rc" != 0 ] || exit 1; fi' EXIT; """
    "trap '__rb_failed=1; exit 129' HUP; trap '__rb_failed=1; exit 130' INT; "
    "trap '__rb_failed=1; exit 143' TERM; "
)
_DONE = "__rb_done=1"


def is_definition_cell(code: str) -> bool:
    """Whether ``code`` holds only comments, blank lines and simple ``NAME=value`` assignments."""
    return _DEFINITIONS.fullmatch(code) is not None


def _ansi_quote(text: str) -> str:
    """Quote ``text`` as bash $'...' so that it stays on one line."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + escaped.replace("\n", "\\n").replace("\r", "\\r") + "'"


def cell_script(code: str, definitions: list[str]) -> str:
    """The bash script that runs one cell after the remembered definitions."""
    defs = "".join(f"eval {_ansi_quote(d)}; " for d in definitions)
    # The marker on the last line tells the EXIT trap that the cell ran to its end.
    return f"{_PRELUDE}{defs}{code.rstrip()}\n{_DONE}\n"


@dataclass(frozen=True)
class Settings:
    """Where and how cells run, read from the PROVEN_* environment variables."""

    target: str = "local"
    ssh_config: str = ""
    host: str = "default"
    netns: str = ""
    sudo: bool = False
    timeout: int = 1800

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """The settings in ``env`` (the process environment by default)."""
        env = os.environ if env is None else env
        target = env.get("PROVEN_TARGET", "local")
        if target not in ("local", "ssh"):
            raise ValueError(f"PROVEN_TARGET must be 'local' or 'ssh', not {target!r}")
        return cls(
            target=target,
            ssh_config=env.get("PROVEN_SSH_CONFIG", ""),
            host=env.get("PROVEN_SSH_HOST", "") or "default",
            netns=env.get("PROVEN_NETNS", ""),
            sudo=env.get("PROVEN_SUDO", "0") == "1",
            timeout=int(env.get("PROVEN_STEP_TIMEOUT", "") or 1800),
        )

    def ssh_base(self) -> list[str]:
        """ssh and the options every connection to the target shares."""
        cmd = ["ssh"] + (["-F", self.ssh_config] if self.ssh_config else [])
        # One master connection per target, reused by every cell: a handshake per cell costs
        # seconds on a software-emulated VM. %C keeps the socket path short.
        cmd += ["-o", "ControlMaster=auto", "-o", "ControlPath=/tmp/proven-ssh-%C"]
        cmd += ["-o", "ControlPersist=60", "-o", "BatchMode=yes"]
        cmd += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.netns and _current_netns() != self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return cmd

    def command(self, script: str, name: str = "step") -> list[str]:
        """The local command that runs ``script`` as ``name`` ($0) under the step time limit."""
        # timeout runs on the target, so the step stops there even when ssh is cut.
        run = ["timeout", "--kill-after=10", str(self.timeout), "bash", "-c", script, name]
        if self.target == "local":
            return (["sudo", "-n"] if self.sudo and os.geteuid() != 0 else []) + run
        return self._remote(run)

    def stop_command(self, name: str) -> list[str]:
        """The command that stops the step called ``name`` on an ssh target."""
        # Killing ssh leaves the remote step running until its timeout (the shared master
        # connection keeps the session open). TERM reaches timeout, which passes it on to
        # the whole step. The [x] keeps pkill from matching its own command line.
        return self._remote(["pkill", "-TERM", "-f", f"{name[:-1]}[{name[-1]}]"])

    def _remote(self, argv: list[str]) -> list[str]:
        remote = (["sudo", "-n"] if self.sudo else []) + argv
        return [*self.ssh_base(), "-n", self.host, "--", shlex.join(remote)]


@functools.cache
def _current_netns() -> str:
    """The name of the network namespace this process is in, or '' for none or unknown."""
    try:
        out = subprocess.run(
            ["ip", "netns", "identify", str(os.getpid())],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


class _Step(asyncio.SubprocessProtocol):
    """A running cell's process: its output as it comes, its exit, and its pipe closing.

    Not asyncio's Process: its wait() also waits for the pipe to close, which an ssh master
    connection or a leftover background job can hold open long after the exit.
    """

    def __init__(self, loop, on_text) -> None:
        self.exited, self.closed = loop.create_future(), loop.create_future()
        self.chunks: list[str] = []
        self.on_text = on_text
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pipe_data_received(self, fd, data) -> None:
        text = self.decoder.decode(data)
        if text:
            self.chunks.append(text)
            if self.on_text:
                self.on_text(text)

    def process_exited(self) -> None:
        self.exited.set_result(None)

    def connection_lost(self, exc) -> None:
        self.closed.set_result(None)

    def text(self) -> str:
        return "".join(self.chunks)


class ProvenShellKernel(Kernel):
    """Runs each cell as a strict bash script on the runbook target."""

    implementation = NAME
    implementation_version = __version__
    language = "bash"
    language_version = "5"
    language_info = {
        "name": "bash",
        "codemirror_mode": "shell",
        "mimetype": "text/x-sh",
        "file_extension": ".sh",
    }
    banner = "proven-shell: each cell is a fresh strict bash on the runbook target"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settings = Settings.from_env()
        self.definitions: list[str] = []
        self._proc: asyncio.SubprocessTransport | None = None
        self._name = "step"  # $0 of the running cell's bash, unique so it can be stopped
        self._stopped = ""  # why the running cell was stopped from outside, if it was

    async def do_execute(
        self,
        code,
        silent,
        store_history=True,
        user_expressions=None,
        allow_stdin=False,
        *,
        cell_meta=None,
        cell_id=None,
    ):
        """Run one cell on the target, streaming its output, and fail it on any failure."""
        if not code.strip():
            return self._ok()
        try:
            rc, output, elapsed = await self._run(cell_script(code, self.definitions), silent)
        except Exception as err:  # a reply must go out, or the notebook waits for its timeout
            log.exception("proven-shell: could not run the cell")
            return self._error(f"could not run the step: {type(err).__name__}: {err}", silent)
        if rc == 0 and not self._stopped:
            if is_definition_cell(code):
                self.definitions.append(code)
            return self._ok()
        return self._error(self._reason(rc, output, elapsed), silent)

    async def _run(self, script: str, silent: bool) -> tuple[int, str, float]:
        """Run ``script``, send its output as it arrives, and return status, output, seconds."""
        self._name = f"proven-step-{secrets.token_hex(4)}"
        argv = self.settings.command(script, self._name)
        log.debug("$ %s", shlex.join([*argv[:-2], "<cell script>", argv[-1]]))
        self._stopped = ""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._proc, step = await loop.subprocess_exec(
            lambda: _Step(loop, None if silent else self._stream),
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a stop reaches all of it
        )
        previous = self._catch_interrupt()
        try:
            # The target's own timeout stops the step; this backstop covers a lost connection.
            await asyncio.wait_for(asyncio.shield(step.exited), self.settings.timeout + 30)
        except TimeoutError:
            self._stop("timeout")
            await self._reap(step)
        finally:
            if previous is not None:
                loop.remove_signal_handler(signal.SIGINT)
                signal.signal(signal.SIGINT, previous)  # ipykernel ignores SIGINT between cells
        rc = self._proc.get_returncode()
        if self._stopped and self.settings.target == "ssh":
            await self._stop_remote()
        # Copy what is still in the pipe, but do not wait for a background job that keeps it
        # open (a daemon started without redirecting its output), nor, after a stop, for the
        # ssh master connection, which holds the pipe until the remote command has ended.
        try:
            await asyncio.wait_for(asyncio.shield(step.closed), 0.5 if self._stopped else 2)
        except TimeoutError:
            if not self._stopped:
                log.warning("a background process of the step still holds its output open")
        self._proc.close()
        self._proc = None
        return rc, step.text(), time.monotonic() - started

    def _stream(self, text: str) -> None:
        self.send_response(self.iopub_socket, "stream", {"name": "stdout", "text": text})

    async def _reap(self, step: _Step) -> None:
        """Wait for a stopped process, killing its group when it ignores SIGTERM."""
        try:
            await asyncio.wait_for(asyncio.shield(step.exited), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.get_pid(), signal.SIGKILL)
            await step.exited

    async def _stop_remote(self) -> None:
        """Stop what is left of the step on the ssh target."""
        argv = self.settings.stop_command(self._name)
        log.debug("$ %s", shlex.join(argv))
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()

    def _catch_interrupt(self):
        """Make SIGINT stop the running cell; returns the handler to restore, if any."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)
        # Through the event loop: a plain handler would wait for the main thread to wake up
        # when the signal lands on one of ipykernel's other threads.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._stop, "interrupt")
        return previous

    def _stop(self, why: str) -> None:
        """Stop the running cell's process group (ssh or the local bash)."""
        proc = self._proc
        if proc is None or proc.get_returncode() is not None:
            return
        self._stopped = self._stopped or why
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.get_pid(), signal.SIGTERM)

    def _reason(self, rc: int, output: str, elapsed: float) -> str:
        """Why the cell failed, in one line."""
        limit = self.settings.timeout
        if self._stopped == "timeout" or (rc in TIMEOUT_STATUS and elapsed >= limit - 1):
            return f"step stopped after {limit} s (PROVEN_STEP_TIMEOUT)"
        if self._stopped == "interrupt":
            return "step interrupted"
        reasons = REASON.findall(output)
        if reasons:
            return reasons[-1]
        if rc == SSH_LOST and self.settings.target == "ssh":
            # ssh's own failure status, with no reason line from the step's trap: the step
            # did not end by itself, its connection did.
            return "the SSH connection to the target was lost during the step (ssh exit 255)"
        return f"exit status {rc}"

    def _ok(self) -> dict:
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    def _error(self, reason: str, silent: bool) -> dict:
        """The error reply (and error output) that makes nbclient and papermill stop."""
        content = {
            "ename": "StepFailed",
            "evalue": reason,
            "traceback": [f"StepFailed: {reason}"],
        }
        if not silent:
            self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}

    async def do_shutdown(self, restart):
        """Stop a running cell and close the shared ssh connection."""
        running = self._proc is not None
        self._stop("interrupt")
        if self.settings.target == "ssh":
            stop = [self.settings.stop_command(self._name)] if running else []
            close = [*self.settings.ssh_base(), "-O", "exit", self.settings.host]
            for argv in [*stop, close]:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=10)
        if not restart:
            # ipykernel 7.4 at times hangs joining its control thread on the way out (any
            # wrapper kernel does), and jupyter_client then waits 2.5 s before SIGTERM. The
            # reply and the shutdown message are out well before half a second.
            timer = threading.Timer(0.5, os._exit, (0,))
            timer.daemon = True
            timer.start()
        return {"status": "ok", "restart": restart}


def install(user: bool = False, prefix: str | None = None) -> Path:
    """Install the kernelspec (into sys.prefix unless ``user`` or ``prefix``); returns its path."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = {"argv": [sys.executable, "-m", "proven.kernel", "-f", "{connection_file}"], **SPEC}
    if not user and prefix is None:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as source:
        (Path(source) / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        where = KernelSpecManager().install_kernel_spec(
            source, kernel_name=NAME, user=user, prefix=prefix
        )
    log.info("installed the %s kernelspec in %s", NAME, where)
    return Path(where)


def ensure_installed() -> None:
    """Install the kernelspec into sys.prefix unless the same one is already there."""
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / NAME / "kernel.json"
    try:
        current = json.loads(spec.read_text())
    except (OSError, ValueError):
        current = {}
    # bin/python and bin/python3 of one environment are the same interpreter.
    python = Path(current.get("argv", [""])[0])
    same_python = python.parent == Path(sys.executable).parent and python.exists()
    if not same_python or any(current.get(k) != v for k, v in SPEC.items()):
        install()


def main(argv: list[str] | None = None) -> None:
    """``install [--user | --prefix P]``, or start the kernel (``-f CONNECTION_FILE``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["install"]:
        from ipykernel.kernelapp import IPKernelApp

        # ipykernel warns at WARNING on every start that TCP is unencrypted; it is local here.
        argv = [*argv, "--IPKernelApp.log_level=ERROR"]
        IPKernelApp.launch_instance(argv=argv, kernel_class=ProvenShellKernel)
        return
    parser = argparse.ArgumentParser(prog="python -m proven.kernel install")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--prefix", help="install under this prefix (default: sys.prefix)")
    args = parser.parse_args(argv[1:])
    print(install(user=args.user, prefix=args.prefix))


if __name__ == "__main__":
    main()
