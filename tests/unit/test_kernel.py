"""The proven-shell kernel: strict cell scripts, the target's command line, the live kernel."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time

import pytest
from jupyter_client.manager import start_new_kernel

from proven import kernel
from proven.kernel import Settings, cell_script, is_definition_cell

LOCAL = Settings(target="local", timeout=20)


def run_cell(code: str, definitions: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run one cell's script the way the kernel does, on this machine."""
    argv = LOCAL.command(cell_script(code, list(definitions)))
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "code",
    [
        "DISKS='/dev/sda /dev/sdb'\nCOUNT=2",
        "# Parameters\nNAME='it'\"'\"'s'\n\n",
        "LIST=(a 'b c')",
        'ROOT="$HOME/x" LEVEL=${LEVEL:-1}  # two on a line',
        "NONE=",
        "export WIPE=no",
    ],
)
def test_assignments_and_comments_make_a_definition_cell(code):
    """Parameters cells, as written or as papermill injects them, count as definitions."""
    assert is_definition_cell(code)


@pytest.mark.parametrize(
    "code", ["echo hi", "NOW=$(date)", "A=`date`", "A=1; rm -rf /tmp/x", "A=1 echo"]
)
def test_a_cell_that_runs_a_command_is_no_definition_cell(code):
    """Command substitutions and commands keep a cell from being carried over."""
    assert not is_definition_cell(code)


def test_a_failing_command_stops_the_cell_and_is_named_with_its_line():
    """`false` fails the cell at once; the ERR trap names the command and the cell's line."""
    proc = run_cell("echo before\nfalse\necho after")

    assert proc.returncode == 1
    assert proc.stdout == "before\nrunbook: command failed (exit 1): false (line 2)\n"


def test_a_failure_inside_a_function_is_caught():
    """errtrace carries the ERR trap into functions."""
    proc = run_cell("check() {\n  false\n}\ncheck\necho after")

    assert proc.returncode == 1
    assert "command failed (exit 1): false (line 2)" in proc.stdout


@pytest.mark.parametrize("status", [0, 3])
def test_exit_before_the_last_line_fails_the_cell(status):
    """`exit 0` mid-cell fails too: the rest of the step was skipped."""
    proc = run_cell(f"echo one\nexit {status}\necho two")

    assert proc.returncode == (status or 1)
    assert f"step called exit {status} before its last line" in proc.stdout
    assert "two" not in proc.stdout


def test_definitions_are_prepended_and_nothing_else_carries_over():
    """Earlier definitions are set in a later cell; bash's line numbers stay the cell's own."""
    proc = run_cell('echo "$DISKS" $COUNT\necho $UNSET', ("DISKS='/dev/vdb /dev/vdc'\nCOUNT=2",))

    assert proc.stdout.startswith("/dev/vdb /dev/vdc 2\n")
    assert "line 2: UNSET: unbound variable" in proc.stdout + proc.stderr


def test_stderr_is_merged_into_the_output_in_order():
    """What a command writes to stderr shows between the lines around it."""
    proc = run_cell("echo 1\necho 2 >&2\necho 3")

    assert proc.stdout == "1\n2\n3\n"


def test_ssh_target_runs_the_script_remotely_under_sudo_and_timeout(monkeypatch):
    """The remote side is `sudo -n timeout ... bash -c SCRIPT`, inside the lab namespace."""
    monkeypatch.setattr(kernel, "_current_netns", lambda: "")
    settings = Settings.from_env(
        {
            "PROVEN_TARGET": "ssh",
            "PROVEN_SSH_CONFIG": "/lab/ssh_config",
            "PROVEN_SSH_HOST": "default",
            "PROVEN_NETNS": "proven",
            "PROVEN_SUDO": "1",
            "PROVEN_STEP_TIMEOUT": "42",
        }
    )

    argv = settings.command("echo 'hi there'")

    assert argv[:5] == ["ip", "netns", "exec", "proven", "ssh"]
    assert argv[5:7] == ["-F", "/lab/ssh_config"]
    assert "BatchMode=yes" in argv and "-n" in argv
    assert shlex.split(argv[-1]) == [
        *("sudo", "-n", "timeout", "--kill-after=10", "42", "bash", "-c"),
        *("echo 'hi there'", "step"),
    ]


def test_ssh_target_delivers_the_script_intact_through_the_remote_shell(tmp_path, monkeypatch):
    """Quotes, dollars and newlines survive the trip through ssh's remote command line."""
    fake = tmp_path / "ssh"
    # Stands in for ssh: the remote side runs the command line with a shell, as sshd does.
    fake.write_text('#!/bin/bash\nwhile [ "$1" != -- ]; do shift; done\nshift\nexec bash -c "$*"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    code = """NOTE='it'"'"'s "$HOME"'\necho "$NOTE" \\$ `echo tick`\nfalse"""

    argv = Settings(target="ssh", timeout=20).command(cell_script(code, []))
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        'it\'s "$HOME" $ tick',
        "runbook: command failed (exit 1): false (line 3)",
    ]


def test_no_netns_prefix_when_already_inside_it(monkeypatch):
    """A kernel started inside the namespace runs ssh directly."""
    monkeypatch.setattr(kernel, "_current_netns", lambda: "proven")

    argv = Settings(target="ssh", netns="proven").command("true")

    assert argv[0] == "ssh"


def test_install_writes_a_bash_kernelspec_under_the_prefix(tmp_path):
    """The kernelspec starts this module with the current Python and says it is bash."""
    where = kernel.install(prefix=str(tmp_path))

    spec = json.loads((where / "kernel.json").read_text())
    assert where == tmp_path / "share" / "jupyter" / "kernels" / "proven-shell"
    assert spec["argv"][1:3] == ["-m", "proven.kernel"] and spec["language"] == "bash"


@pytest.fixture(scope="module")
def live_kernel():
    """A running proven-shell kernel on this machine with a 3 s step limit."""
    kernel.ensure_installed()
    env = {**os.environ, "PROVEN_TARGET": "local", "PROVEN_SUDO": "0", "PROVEN_STEP_TIMEOUT": "3"}
    km, kc = start_new_kernel(kernel_name="proven-shell", env=env)
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def execute(kc, code: str) -> tuple[dict, list[str]]:
    """Run ``code``; return the reply's content and the streamed texts."""
    texts: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            texts.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, output_hook=hook, timeout=30)
    return reply["content"], texts


def test_live_kernel_streams_output_as_it_comes(live_kernel):
    """Output reaches the notebook in pieces while the cell runs, not all at the end."""
    content, texts = execute(live_kernel[1], "echo one; sleep 1; echo two")

    assert content["status"] == "ok"
    assert texts == ["one\n", "two\n"]


def test_live_kernel_replies_with_an_error_naming_the_command(live_kernel):
    """A failing cell gets an error reply that nbclient and papermill raise on."""
    content, _ = execute(live_kernel[1], "echo x\nfalse\necho y")

    assert content["status"] == "error" and content["ename"] == "StepFailed"
    assert content["evalue"] == "command failed (exit 1): false (line 2)"


def test_live_kernel_keeps_definitions_but_not_the_working_directory(live_kernel):
    """A parameters cell carries over; a `cd` does not, as each step is a fresh shell."""
    kc = live_kernel[1]
    execute(kc, "WHERE='somewhere else'")
    execute(kc, "cd /")

    _, texts = execute(kc, 'echo "$WHERE" "$PWD"')

    assert texts == [f"somewhere else {os.getcwd()}\n"]


def test_live_kernel_stops_a_step_at_its_time_limit(live_kernel):
    """A step that outlives PROVEN_STEP_TIMEOUT fails with a message naming the limit."""
    content, _ = execute(live_kernel[1], "sleep 60")

    assert content["status"] == "error"
    assert content["evalue"] == "step stopped after 3 s (PROVEN_STEP_TIMEOUT)"


def test_live_kernel_does_not_wait_for_a_background_job_holding_the_output(live_kernel):
    """A job left running with the step's output open delays the reply by 2 s, not its life."""
    started = time.monotonic()
    content, texts = execute(live_kernel[1], "sleep 8 &\necho started")

    assert content["status"] == "ok" and texts == ["started\n"]
    assert time.monotonic() - started < 5


def test_live_kernel_interrupt_stops_the_running_step(live_kernel):
    """An interrupt kills the step's processes and fails the cell; the kernel lives on."""
    km, kc = live_kernel
    threading.Timer(0.5, km.interrupt_kernel).start()

    started = time.monotonic()
    content, _ = execute(kc, "sleep 5; echo unreachable")

    assert content["evalue"] == "step interrupted"
    assert time.monotonic() - started < 3
    assert execute(kc, "echo alive")[1] == ["alive\n"]
