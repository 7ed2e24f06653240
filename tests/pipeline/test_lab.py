"""`nox -s lab`: runbook cells sent through JupyterLab's own API run on the lab VM; stop clears all.

The cells go the way a browser sends them: a session for the notebook over HTTP, then
execute requests on the kernel's websocket channel (tornado's client, jupyter_client's
message format).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from pipeline_helpers import FIXTURES, ROOT, proven
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from proven import lab as proven_lab

ADDRESS = re.compile(r"open (http://127\.0\.0\.1:\d+)/lab\?token=(\w+)")
HELLO = FIXTURES / "91-lab-hello.ipynb"
CELL_TIMEOUT = 300  # seconds; one cell on the software-emulated VM takes a few


@dataclass
class Lab:
    """A `nox -s lab` running in the background, and what it printed so far."""

    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    base: str = ""  # http://127.0.0.1:PORT
    token: str = ""
    up_s: float = 0.0

    @property
    def output(self) -> str:
        return "".join(self.lines)


def start_lab(*args: str, timeout: float = 1200) -> Lab:
    """Start `nox -s lab -- ARGS` as a user would, and return once it prints its address."""
    nox = shutil.which("nox")
    if nox is None:
        pytest.fail("the lab tests start `nox -s lab`: install nox (apt-get install nox)")
    started = time.monotonic()
    # A session of its own, like a terminal's job: Ctrl-C can go to the whole group.
    proc = subprocess.Popen(
        [nox, "-s", "lab", "--", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As from a terminal: a test run in the background would hand SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lab = Lab(proc)
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lab.lines.append(line)
            match = ADDRESS.search(line)
            if match:
                lab.base, lab.token = match.groups()
                found.set()

    threading.Thread(target=read, daemon=True).start()
    while not found.wait(1):
        if proc.poll() is not None or time.monotonic() - started > timeout:
            stop_lab(lab)
            pytest.fail(f"the lab never printed its address:\n{lab.output[-4000:]}")
    lab.up_s = round(time.monotonic() - started, 1)
    return lab


def stop_lab(lab: Lab) -> None:
    """Make sure nothing of ``lab`` keeps running (for a test that failed half way)."""
    if lab.proc.poll() is None:
        proven("lab", "--stop", timeout=600)
        try:
            lab.proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(lab.proc.pid, signal.SIGKILL)
    print(lab.output)


async def _run_cells(lab: Lab, path: str, sources: list[str]) -> list[tuple[str, str]]:
    headers = {"Authorization": f"token {lab.token}"}
    http = AsyncHTTPClient()
    body = {"path": path, "type": "notebook", "name": path, "kernel": {"name": "proven-shell"}}
    reply = await http.fetch(
        f"{lab.base}/api/sessions", method="POST", headers=headers, body=json.dumps(body)
    )
    session = json.loads(reply.body)
    channels = f"{lab.base.replace('http', 'ws', 1)}/api/kernels/{session['kernel']['id']}/channels"
    ws = await websocket_connect(HTTPRequest(channels, headers=headers))
    client = Session(username="pytest")
    results = []
    try:
        for source in sources:
            request = client.msg(
                "execute_request",
                {"code": source, "silent": False, "store_history": True, "allow_stdin": False},
            )
            request["channel"] = "shell"
            await ws.write_message(json.dumps(request, default=json_default))
            results.append(await _collect(ws, request["header"]["msg_id"]))
    finally:
        ws.close()
        await http.fetch(
            f"{lab.base}/api/sessions/{session['id']}", method="DELETE", headers=headers
        )
    return results


async def _collect(ws, msg_id: str) -> tuple[str, str]:
    """The reply status and the text a cell printed, once its kernel is idle again."""
    status, text, idle = None, [], False
    while status is None or not idle:
        message = await asyncio.wait_for(ws.read_message(), CELL_TIMEOUT)
        if message is None:
            raise ConnectionError("the kernel's websocket closed")
        message = json.loads(message)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind == "error":
            text.append("\n".join(content["traceback"]))
        elif kind == "execute_reply":
            status = content["status"]
        elif kind == "status":
            idle = content["execution_state"] == "idle"
    return status, "".join(text)


def run_cells(lab: Lab, path: str, sources: list[str]) -> list[tuple[str, str]]:
    """Run ``sources`` one by one in a kernel for notebook ``path``: (status, output) each."""
    return asyncio.run(_run_cells(lab, path, sources))


def notebook(lab: Lab, path: str) -> dict:
    """The notebook as JupyterLab serves it to the reader."""

    async def fetch():
        headers = {"Authorization": f"token {lab.token}"}
        return await AsyncHTTPClient().fetch(f"{lab.base}/api/contents/{path}", headers=headers)

    return json.loads(asyncio.run(fetch()).body)["content"]


def tagged(nb: dict, tag: str) -> str:
    return next("".join(c["source"]) for c in nb["cells"] if tag in c["metadata"].get("tags", []))


def step_under(nb: dict, heading: str) -> str:
    """The first code cell after the markdown cell that has ``heading``."""
    seen = False
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and heading in source:
            seen = True
        elif seen and cell["cell_type"] == "code":
            return source
    pytest.fail(f"no step under a heading {heading!r}")


def lab_processes(state: proven_lab.State) -> list[int]:
    """JupyterLab and its kernels, if any is still running."""
    alive = [state.jupyter_pid] if proven_lab.is_jupyter_process(state.jupyter_pid) else []
    return alive + proven_lab.kernel_pids()


def lab_domains() -> list[int]:
    """QEMU processes of lab VMs (libvirt names their domains proven_...)."""
    return [pid for pid, argv in proven_lab.processes() if any(b"guest=proven_" in a for a in argv)]


def test_ctrl_c_stops_a_local_lab_and_its_kernels():
    """Ctrl-C in the session's terminal stops JupyterLab after a cell ran with -p's value."""
    lab = start_lab("--target", "local", "--runbook", str(HELLO), "-p", "PLACE=the-lab")
    try:
        nb = notebook(lab, HELLO.name)
        cells = [c["source"] for c in nb["cells"] if c["cell_type"] == "code"]
        results = run_cells(lab, HELLO.name, cells)
        state = proven_lab.State.load()

        os.killpg(lab.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        status = lab.proc.wait(120)
    finally:
        stop_lab(lab)

    assert results[-1] == ("ok", f"hello from {socket.gethostname()}, in the-lab\n"), results
    assert status == 0, lab.output[-3000:]
    assert lab_processes(state) == []
    assert not proven_lab.STATE.exists()


@dataclass
class Run:
    """What one lab did: its start, the cells it ran, its stop, and what was left after."""

    lab: Lab
    nb: dict = field(default_factory=dict)
    results: list = field(default_factory=list)
    state: proven_lab.State | None = None
    running: list[int] = field(default_factory=list)  # JupyterLab and kernels while up
    stop: subprocess.CompletedProcess | None = None
    status: int | None = None  # of the foreground `nox -s lab`
    left: list[int] = field(default_factory=list)
    domains: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def vm_lab():
    """One lab on a fresh VM: the storage runbook's first steps through the API, then --stop."""
    lab = start_lab()
    run = Run(lab)
    try:
        run.nb = notebook(lab, "01-storage.ipynb")
        run.state = proven_lab.State.load()
        # The package install (step 2) is left out for time: the disk check needs only
        # util-linux, which the box has.
        cells = [
            tagged(run.nb, "parameters"),
            tagged(run.nb, "injected-parameters"),
            step_under(run.nb, "Values that follow from the parameters"),
            step_under(run.nb, "Check that the disks are free"),
            "hostname",
        ]
        run.results = run_cells(lab, "01-storage.ipynb", cells)
        run.running = lab_processes(run.state)

        # What a user types in a second shell; -R: the session's environment was just made.
        run.stop = subprocess.run(
            ["nox", "-R", "-s", "lab", "--", "--stop"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        run.status = lab.proc.wait(300)
        run.left, run.domains = lab_processes(run.state), lab_domains()
    finally:
        stop_lab(lab)
    return run


def test_reader_copy_carries_the_lab_parameters(vm_lab):
    """The notebook JupyterLab serves has the lab VM's disks injected after its parameters."""
    injected = tagged(vm_lab.nb, "injected-parameters")

    assert "DISKS='/dev/vdb /dev/vdc'" in injected
    assert not any(c.get("outputs") for c in vm_lab.nb["cells"] if c["cell_type"] == "code")


def test_first_steps_run_on_the_vm(vm_lab):
    """Each cell succeeds, finds the VM's blank disks free, and the VM answers as `lab`."""
    statuses = [status for status, _ in vm_lab.results]
    disks, hostname = vm_lab.results[3][1], vm_lab.results[4][1]

    assert statuses == ["ok"] * 5, vm_lab.results
    assert "/dev/vdb: free" in disks and "/dev/vdc: free" in disks
    assert hostname.strip() == "lab"
    assert vm_lab.running and vm_lab.running[0] == vm_lab.state.jupyter_pid


def test_stop_tears_down_jupyterlab_and_the_vm(vm_lab):
    """--stop from a second shell ends the session cleanly with no JupyterLab, kernel or VM."""
    assert vm_lab.stop.returncode == 0, vm_lab.stop.stdout + vm_lab.stop.stderr
    assert vm_lab.status == 0, vm_lab.lab.output[-3000:]
    assert vm_lab.left == []
    assert vm_lab.domains == []
    assert not proven_lab.STATE.exists()
