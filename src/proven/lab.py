"""`proven lab`: a lab VM and a JupyterLab whose runbook cells run on it, one at a time.

Starting brings the VM up the way verify does (host, box, VM up), writes copies of the
runbooks that carry the lab's parameters into build/lab/ (nothing is executed), and starts
JupyterLab on 127.0.0.1 with a token, the ``proven-shell`` kernel pointed at the VM. It stays
up in the foreground until Ctrl-C, SIGTERM, ``proven lab --stop`` from another shell, or
JupyterLab's own File > Shut Down; each of them tears down JupyterLab, the VM, and the
daemons the lab itself started. What a lab started is saved in build/lab/.lab.json, so a
stop (or the next start) also clears what a killed lab left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from proven import box, host, kernel, targets, vm
from proven.errors import ProvenError
from proven.guides import BUILD, ROOT, Guide
from proven.runbook import (
    Target,
    check_known_parameters,
    own_parameters,
    ship,
    validate_parameters,
)

log = logging.getLogger("proven")

LAB_DIR = BUILD / "lab"  # JupyterLab's root: the parameterised copies of the runbooks
STATE = LAB_DIR / ".lab.json"  # hidden from JupyterLab's file browser, like the runtime dir
RUNTIME = LAB_DIR / ".runtime"  # Jupyter's runtime dir: server info and kernel connections
LOG = BUILD / "logs" / "jupyterlab.log"
ADDRESS = "127.0.0.1"
READY_TIMEOUT = 90  # seconds for JupyterLab to answer; it takes 3-10 s
STOP_TIMEOUT = 300  # seconds a running lab gets to tear itself down after --stop


class LabError(ProvenError):
    """The lab could not be started or stopped."""


@dataclass
class Options:
    """What the user asked of this lab."""

    guides: list[Guide]
    target: str = "lab"  # lab (a fresh VM), local, or ssh://[user@]host[:port]
    disks: int = 2
    install: bool = True
    extra: dict = field(default_factory=dict)  # parameters from the command line


@dataclass
class State:
    """What a running lab started, so that whoever stops it stops exactly that."""

    pid: int  # the `proven lab` process in the foreground
    target: str = "lab"
    started_host: bool = False  # the lab started libvirtd and virtlogd, so it stops them
    vm: bool = False  # the lab made a VM
    vm_env: dict = field(default_factory=dict)  # the Vagrantfile's inputs, for destroy
    jupyter_pid: int = 0
    url: str = ""

    def save(self) -> None:
        STATE.parent.mkdir(parents=True, exist_ok=True)
        # The address carries the token: only its owner may read it.
        fd = os.open(STATE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=1)

    @classmethod
    def load(cls) -> State | None:
        """The saved state, or None when no lab left any (an unreadable one is set aside)."""
        try:
            return cls(**json.loads(STATE.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            log.warning("lab: ignoring unreadable %s: %s", STATE.relative_to(ROOT), exc)
            return None


def start(opts: Options) -> int:
    """Bring the lab up, wait in the foreground until it is told to stop, then tear it down."""
    values = lab_values(opts)  # a misspelt -p stops the lab before a VM boots for it
    previous = State.load()
    if previous and is_lab_process(previous.pid):
        raise LabError(
            f"a lab is already running (pid {previous.pid}): {previous.url or 'starting'}",
            hint="open that address, or stop it first: nox -s lab -- --stop",
        )
    if previous:
        log.info("lab: clearing what an earlier lab (pid %d) left", previous.pid)
        # Its daemons are about to be needed again: this lab takes them over instead.
        teardown(previous, stop_host=False)

    state = State(pid=os.getpid(), target=opts.target)
    state.started_host = bool(previous and previous.started_host)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    started = time.monotonic()
    status, failed = 130, False  # 130: interrupted before the lab was up
    try:
        target = bring_up(opts, state)
        notebooks = write_notebooks(opts.guides, values)
        for guide in opts.guides:  # what verify copies before step 1 (the Funambol checker)
            ship(guide.runbook, target)
        jupyter = start_jupyter(target, state)
        print_address(state, notebooks, time.monotonic() - started)
        status = 0  # from here on, Ctrl-C and --stop are the normal way out
        exited = jupyter.wait()
        log.info("lab: JupyterLab stopped (exit %d); tearing the lab down", exited)
        status = 0 if exited == 0 else 1
    except KeyboardInterrupt:
        log.info("lab: stopping; tearing the lab down")
    except BaseException:
        failed = True
        raise
    finally:
        # A second Ctrl-C, or the --stop that sent SIGTERM, must not cut the teardown short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        try:
            settle_children(exclude=state.jupyter_pid)
            teardown(state)
        except Exception as exc:
            if not failed:
                raise
            log.error("lab: teardown failed too: %s", exc)  # the first error is the one shown
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return status


def bring_up(opts: Options, state: State) -> Target:
    """The target the cells run on: for ``lab``, a fresh VM brought up as verify does."""
    if opts.target != "lab":
        target = targets.parse(opts.target)
        if target.kind == "local":
            log.warning(
                "lab: target local: cells run on THIS machine%s; the storage runbook "
                "partitions the disks it is given",
                " as root" if target.sudo else "",
            )
        state.save()
        return target

    # Stopped only if the lab starts them: a verify or another lab may be using running ones.
    state.started_host = state.started_host or host.running_pid("libvirtd") is None
    state.save()
    log.info("== host")
    host.prepare(install=opts.install)
    vm.clear_leftovers()
    log.info("== box")
    box.ensure()
    log.info("== VM up")
    state.vm, state.vm_env = True, vm.settings(disks=opts.disks)
    state.save()
    ssh_config = vm.up(state.vm_env)
    return Target(kind="ssh", ssh_config=ssh_config, netns=host.NETNS, sudo=True)


def lab_values(opts: Options) -> dict[str, dict]:
    """Each runbook's parameters in this lab: the guide's lab values, then the command line's.

    The lab values fit the lab VM (its disks are small); other targets get the runbooks'
    own defaults. A command-line parameter goes to every runbook that has it.
    """
    values = {}
    for guide in opts.guides:
        own = dict(guide.lab_parameters) if opts.target == "lab" else {}
        own |= own_parameters(guide.runbook, opts.extra)
        validate_parameters(guide.runbook, own)
        values[guide.slug] = own
    check_known_parameters([g.runbook for g in opts.guides], opts.extra)
    return values


def write_notebooks(guides: list[Guide], values: dict[str, dict]) -> list[Path]:
    """Copies of the runbooks with their parameters injected (as papermill does), unexecuted.

    Run top to bottom in the lab, a copy does what verify does with the same values.
    """
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    # Copies left by an earlier lab may carry another target's values: none must stay.
    for old in LAB_DIR.glob("*.ipynb"):
        old.unlink()
    shutil.rmtree(LAB_DIR / ".ipynb_checkpoints", ignore_errors=True)
    written = []
    for guide in guides:
        nb = load_notebook_node(str(guide.runbook))  # as papermill reads it before injecting
        nb = parameterize_notebook(nb, values[guide.slug], comment="The lab's parameters")
        path = LAB_DIR / guide.runbook.name
        nbformat.write(nb, path)
        written.append(path)
    log.info("lab: %d runbooks with the lab's parameters in %s", len(written), rel(LAB_DIR))
    return written


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        return sock.getsockname()[1]


def jupyter_command(port: int) -> list[str]:
    """JupyterLab on ``port`` of 127.0.0.1, serving build/lab/."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={ADDRESS}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # that port or a clear failure, never a surprise one
        f"--ServerApp.root_dir={LAB_DIR}",
        "--ServerApp.allow_root=True",  # the lab runs as root (namespaces, libvirt)
        # Its terminals would be root shells on this machine, not on the target.
        "--ServerApp.terminals_enabled=False",
        # The lab talks to nothing but 127.0.0.1 and the target: no news, update or
        # extension lookups on the internet.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]


def start_jupyter(target: Target, state: State) -> subprocess.Popen:
    """Start JupyterLab with the kernel pointed at ``target``; return once it answers."""
    kernel.ensure_installed()
    port, token = free_port(), secrets.token_hex(24)
    RUNTIME.mkdir(parents=True, exist_ok=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    # Kernels inherit the server's environment: the PROVEN_* variables point them at the target.
    env = {
        **os.environ,
        **target.env(),
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(RUNTIME),
    }
    log.info("lab: starting JupyterLab on %s:%d; log: %s", ADDRESS, port, rel(LOG))
    with LOG.open("ab") as out:
        proc = subprocess.Popen(
            jupyter_command(port),
            cwd=LAB_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C is for the lab to handle; it stops JupyterLab
        )
    state.jupyter_pid = proc.pid
    state.url = f"http://{ADDRESS}:{port}/lab?token={token}"
    state.save()
    wait_until_ready(proc, port, token)
    return proc


def wait_until_ready(proc: subprocess.Popen, port: int, token: str) -> None:
    """Return once JupyterLab's API answers with this token; fail when it exits first."""
    request = urllib.request.Request(
        f"http://{ADDRESS}:{port}/api/status", headers={"Authorization": f"token {token}"}
    )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(
                f"JupyterLab exited (status {proc.returncode}) before answering; tail of "
                f"{rel(LOG)}:\n{vm.tail(LOG)}",
                hint="fix what the log names (is the lab extra installed? pip install -e .[lab])",
            )
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(request, timeout=5) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.5)
    raise LabError(
        f"JupyterLab did not answer on port {port} within {READY_TIMEOUT} s; tail of "
        f"{rel(LOG)}:\n{vm.tail(LOG)}",
        hint="look at the log for the cause",
    )


def print_address(state: State, notebooks: list[Path], seconds: float) -> None:
    where = "the lab VM" if state.target == "lab" else state.target
    names = ", ".join(p.name for p in notebooks)
    print(
        f"\nThe lab is up after {seconds:.0f} s: open {state.url}\n"
        f"  runbooks: {names} (in {rel(LAB_DIR)}, with the lab's parameters; run the cells "
        f"from the top, on {where})\n"
        "  stop it with Ctrl-C here, or from another shell: nox -s lab -- --stop\n",
        flush=True,
    )


def settle_children(exclude: int = 0, timeout: float = 120) -> None:
    """Let this process's children (vagrant while the VM boots) finish before the teardown.

    Ctrl-C in the terminal reaches them too, and vagrant winds its action down on it; a
    --stop (SIGTERM) reaches only this process, so it is passed on to them as SIGINT. A
    second SIGINT would make vagrant quit without cleaning up, hence not after a Ctrl-C.
    """
    children = [pid for pid in child_pids() if pid != exclude]
    if not children:
        return
    if signal.SIGINT not in _received:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
    log.info("lab: waiting for %s to stop", ", ".join(_name(pid) for pid in children))
    for pid in children:
        if not wait_for_exit(pid, timeout):
            log.warning("lab: %s did not stop within %.0f s; ending it", _name(pid), timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def child_pids() -> list[int]:
    """Live child processes of this process."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == me and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def _name(pid: int) -> str:
    argv = [a.decode(errors="replace") for a in _argv(pid) if a]
    words = [Path(a).name for a in argv[:3]]
    return f"{' '.join(words) or 'pid'} ({pid})"


def stop() -> int:
    """Tear down the running lab: ask its process, or undo what a killed one left."""
    state = State.load()
    if state is None:
        log.info("lab: no lab is running")
        return 0
    if state.pid != os.getpid() and is_lab_process(state.pid):
        log.info("lab: asking the lab (pid %d) to tear itself down", state.pid)
        os.kill(state.pid, signal.SIGTERM)
        if wait_for_exit(state.pid, STOP_TIMEOUT) and not STATE.exists():
            log.info("lab: stopped")
            return 0
        log.warning("lab: pid %d did not finish its teardown; finishing it here", state.pid)
    teardown(state)
    return 0


def teardown(state: State, stop_host: bool = True) -> None:
    """Stop what ``state`` says the lab started, newest first, and forget it."""
    stop_jupyter(state.jupyter_pid)
    if state.vm:
        vm.destroy(state.vm_env or None)
    if state.started_host and stop_host:
        # Only daemons the lab itself started, and the namespace it made for them.
        host.teardown()
    STATE.unlink(missing_ok=True)
    log.info("lab: torn down")


def stop_jupyter(pid: int) -> None:
    """Stop JupyterLab by its PID (it shuts its kernels down), then any kernel it left."""
    if pid and is_jupyter_process(pid):
        log.info("lab: stopping JupyterLab (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_for_exit(pid, 20):
            log.warning("lab: JupyterLab (pid %d) ignored SIGTERM; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for_exit(pid, 5)
    for left in kernel_pids():
        log.info("lab: stopping kernel pid %d left by JupyterLab", left)
        with contextlib.suppress(ProcessLookupError):
            os.kill(left, signal.SIGKILL)


def kernel_pids() -> list[int]:
    """Kernels of this lab's JupyterLab: their connection files lie in its runtime dir."""
    marker = str(RUNTIME).encode() + b"/kernel-"
    return [pid for pid, argv in processes() if any(a.startswith(marker) for a in argv)]


def processes() -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every process this user may see."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                found.append((int(entry.name), argv))
    return found


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def is_lab_process(pid: int) -> bool:
    """Whether ``pid`` is a live `proven lab` (not a process that reused the PID)."""
    argv = _argv(pid)
    return b"lab" in argv and any(Path(a.decode(errors="replace")).name == "proven" for a in argv)


def is_jupyter_process(pid: int) -> bool:
    """Whether ``pid`` is a live JupyterLab started by a lab (checked before signalling it)."""
    return b"jupyterlab" in _argv(pid)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` is gone within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.2)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


_received: list[int] = []  # the signals that stopped this lab


def _interrupt(signum, frame):
    _received.append(signum)
    raise KeyboardInterrupt
