"""Running runbooks with papermill: every failure fails the run and names the step."""

from __future__ import annotations

import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from proven.runbook import (
    STARTUP,
    RunbookError,
    StepFailed,
    Target,
    execute,
    plan,
    validate_parameters,
)

LOCAL = Target(kind="local", sudo=False)
# As bash_kernel writes it: the kernel whose silent passes the runner must not inherit.
BASH = {"name": "bash", "language": "bash", "display_name": "Bash"}
PYTHON = {"name": "python3", "language": "python", "display_name": "Python 3"}


def runbook(tmp_path, *cells, spec=BASH, name="01-test", parameters=None):
    """Write a notebook of ``cells``: markdown for '## heading', code for the rest."""
    nb = new_notebook(metadata={"kernelspec": spec})
    if parameters is not None:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    for text in cells:
        is_heading = text.startswith("## ")
        nb.cells.append(new_markdown_cell(text) if is_heading else new_code_cell(text))
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def run(path, parameters=None, **kw):
    """Execute ``path`` locally into build/ beside it."""
    executed = path.parent / "build" / path.name
    return execute(path, executed, parameters or {}, LOCAL, **kw)


def test_bash_kernel_notebook_fails_on_a_command_in_the_middle_of_a_cell(tmp_path):
    """A cell `false; echo after` in a bash_kernel notebook fails, and `after` never runs."""
    path = runbook(tmp_path, "## Break it", "echo before\nfalse\necho after")

    with pytest.raises(StepFailed) as failed:
        run(path)

    assert (failed.value.step, failed.value.title) == (1, "Break it")
    assert failed.value.reason == "command failed (exit 1): false (line 2)"
    assert "before" in failed.value.output and "after" not in failed.value.output
    assert str(failed.value).startswith(
        "runbook 01-test, step 1 'Break it' failed: command failed (exit 1): false"
    )


def test_a_step_calling_exit_3_fails(tmp_path):
    """`exit 3` ends the step early and fails it with that status."""
    path = runbook(tmp_path, "echo fine", "# Leave early\nexit 3\necho never")

    with pytest.raises(StepFailed) as failed:
        run(path)

    assert (failed.value.step, failed.value.title) == (2, "Leave early")
    assert "called exit 3" in failed.value.reason


def test_a_step_calling_exit_0_midway_fails_too(tmp_path):
    """`exit 0` would skip the rest of the step, so it fails the run like any exit."""
    path = runbook(tmp_path, "# Skip the rest\necho one\nexit 0\necho two")

    with pytest.raises(StepFailed) as failed:
        run(path)

    assert failed.value.step == 1 and "called exit 0" in failed.value.reason
    assert "two" not in failed.value.output


def test_a_failing_bang_command_fails_a_python_runbook(tmp_path):
    """`! false` in a python3 notebook raises CalledProcessError and fails the step."""
    path = runbook(
        tmp_path,
        "x = 1",
        "# Run a shell command\n! false\nprint('reached', 'the end')",
        spec=PYTHON,
    )

    with pytest.raises(StepFailed) as failed:
        run(path)

    assert (failed.value.step, failed.value.title) == (2, "Run a shell command")
    assert failed.value.reason.startswith("CalledProcessError")
    assert "reached the end" not in failed.value.output


def test_a_hanging_step_is_stopped_at_the_step_timeout(tmp_path):
    """`sleep 60` with a 3 s limit fails the step with a message naming the limit."""
    path = runbook(tmp_path, "## Wait forever", "sleep 60")

    with pytest.raises(StepFailed) as failed:
        run(path, step_timeout=3)

    assert failed.value.title == "Wait forever"
    assert failed.value.reason == "step stopped after 3 s (PROVEN_STEP_TIMEOUT)"
    assert failed.value.result.duration_s < 30


def test_passing_runbook_uses_injected_parameters_and_counts_its_steps(tmp_path):
    """Passed values override the defaults in every later step; the executed copy has outputs."""
    path = runbook(
        tmp_path,
        "## 1. Show the disks",
        'echo "$DISKS"',
        "## 2. Count them",
        "echo $COUNT",
        parameters="DISKS='/dev/sda /dev/sdb'\nCOUNT=2",
    )

    result = run(path, {"DISKS": "/dev/vdb /dev/vdc"})

    executed = nbformat.read(result.executed, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    outputs = {c.source: "".join(o.get("text", "") for o in c.outputs) for c in code}
    assert (result.outcome, result.steps, result.steps_run) == ("passed", 2, 2)
    assert result.failure is None
    assert outputs['echo "$DISKS"'] == "/dev/vdb /dev/vdc\n"
    assert outputs["echo $COUNT"] == "2\n"


def test_executed_notebook_is_written_when_a_step_fails(tmp_path):
    """The executed copy exists after a failure and holds the failed step's output."""
    path = runbook(tmp_path, "echo first", "echo second\nfalse", "echo third")

    with pytest.raises(StepFailed) as failed:
        run(path)

    text = failed.value.result.executed.read_text()
    assert failed.value.step == 2 and failed.value.result.steps_run == 2
    assert "second" in text and "StepFailed" in text and "third\\n" not in text


def test_a_dying_kernel_fails_the_step_it_was_running(tmp_path):
    """A kernel that dies mid-step ends the run as a failure of that step."""
    path = runbook(tmp_path, "print('hi')", "# Die\nimport os\nos._exit(1)", "1", spec=PYTHON)

    with pytest.raises(StepFailed) as failed:
        run(path)

    assert (failed.value.step, failed.value.title) == (2, "Die")
    assert "kernel stopped" in failed.value.reason


def running(argv: str) -> bool:
    """Whether a process with exactly this command line is running."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().replace(b"\0", b" ").strip() == argv.encode():
                return True
        except OSError:
            pass
    return False


def test_ctrl_c_stops_the_step_writes_the_notebook_and_reraises(tmp_path):
    """SIGINT to the runner stops the step's processes, keeps the executed copy, re-raises."""
    started = tmp_path / "started"
    path = runbook(tmp_path, f"touch {started}\nsleep 21.5")
    script = (
        "import pathlib, proven.runbook as r\n"
        f"p = pathlib.Path({str(path)!r})\n"
        "r.execute(p, p.parent / 'build' / p.name, {}, r.Target('local', sudo=False))\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script],
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test run in the background would hand SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running("sleep 21.5")

    runner.send_signal(signal.SIGINT)
    stderr = runner.communicate(timeout=30)[1]

    assert "KeyboardInterrupt" in stderr and "interrupted in step 1" in stderr
    assert (tmp_path / "build" / path.name).exists()
    assert not running("sleep 21.5")


def test_check_false_returns_the_failure_instead_of_raising(tmp_path):
    """With check=False the result says failed and carries the StepFailed."""
    path = runbook(tmp_path, "false")

    result = run(path, check=False)

    assert result.outcome == "failed" and result.failure.step == 1


def test_unknown_parameter_is_rejected_with_the_known_names(tmp_path):
    """A misspelt parameter names the runbook, the parameter and the ones it has."""
    path = runbook(tmp_path, "true", parameters="DISKS='/dev/sda'\nCOUNT=2")

    with pytest.raises(RunbookError, match="01-test has no parameter 'DISK'; .*DISKS, COUNT"):
        validate_parameters(path, {"DISK": "/dev/vdb"})


@pytest.mark.parametrize(
    ("given", "expected"), [({"COUNT": "2"}, "int"), ({"WIPE": 1}, "bool"), ({"DISKS": 3}, "str")]
)
def test_parameter_of_the_wrong_type_is_rejected(tmp_path, given, expected):
    """Values must match the type of the literal default: str, int, bool, float."""
    path = runbook(tmp_path, "true", parameters="DISKS='/dev/sda'\nCOUNT=2\nWIPE=false")

    with pytest.raises(RunbookError, match=f"must be a {expected} .* its parameters: DISKS"):
        validate_parameters(path, given)


def test_python_parameters_are_typed_from_their_literals(tmp_path):
    """A float default takes an int; an int default does not take a bool."""
    path = runbook(tmp_path, "pass", spec=PYTHON, parameters="size = 1.5\ncount: int = 2")

    validate_parameters(path, {"size": 2, "count": 3})
    with pytest.raises(RunbookError, match="'count' must be a int"):
        validate_parameters(path, {"count": True})


def test_plan_fills_in_the_parameters_and_runs_nothing(tmp_path):
    """The plan shows given values in the parameters and the commands; nothing is touched."""
    marker = tmp_path / "touched"
    path = runbook(
        tmp_path,
        "## 1. Make a file",
        f"touch {marker}\necho \"$DISKS\" '$DISKS'",
        parameters="DISKS='/dev/sda /dev/sdb'\nCOUNT=2",
    )

    text = plan(path, {"DISKS": "/dev/vdb"})

    assert not marker.exists()
    assert "DISKS=/dev/vdb  # given" in text and "COUNT=2" in text
    assert "step 1/1: Make a file" in text
    assert "echo \"/dev/vdb\" '$DISKS'" in text


class FakeShell:
    """Just enough of an old IPython shell for the startup file's fallback."""

    def __init__(self, status):
        self.user_ns = {}
        self.status = status

    def has_trait(self, name):
        return False

    def system(self, cmd):
        self.user_ns["_exit_code"] = self.status

    def find_cell_magic(self, name):
        return None


@pytest.mark.parametrize("status", [0, 2])
def test_strict_startup_makes_system_raise_on_older_ipython(status):
    """Without IPython's own switch, the startup wraps system() and checks _exit_code."""
    shell = FakeShell(status)
    runpy.run_path(str(STARTUP / "00-strict-shell.py"), {"get_ipython": lambda: shell})

    if status:
        with pytest.raises(subprocess.CalledProcessError):
            shell.system("false")
    else:
        shell.system("true")


@pytest.mark.parametrize(
    ("gateway", "shown"),
    [
        ("10.0.0.1", "Address=10.0.0.2/24 Gateway=10.0.0.1"),
        ("", "Address=10.0.0.2/24"),
    ],
)
def test_plan_works_out_expansions_with_an_operator(tmp_path, gateway, shown):
    """${NAME:+word} shows the word with its names filled in, or nothing, as bash would."""
    path = runbook(
        tmp_path,
        "## 1. Write the address",
        'echo "Address=$ADDRESS${GATEWAY:+ Gateway=$GATEWAY}" ${MODE:-auto} ${UNSET:-x}'
        " ${GATEWAY:+$'\\n'}",
        parameters="ADDRESS='10.0.0.2/24'\nGATEWAY=''\nMODE=''",
    )

    text = plan(path, {"GATEWAY": gateway})

    # Quotes inside the braces mean what they would not mean outside: shown as written.
    assert f"echo \"{shown}\" auto ${{UNSET:-x}} ${{GATEWAY:+$'\\n'}}" in text


@pytest.mark.parametrize(
    ("given", "shape"),
    [
        ({"RUNS": "abc"}, "a whole number"),
        ({"RUNS": "-3"}, "a whole number"),
        ({"WIPE": "maybe"}, "yes or no"),
        ({"WIPE": "YES"}, "yes or no"),
    ],
)
def test_string_parameters_keep_the_shape_of_their_default(tmp_path, given, shape):
    """A default of digits takes whole numbers only, and a default of yes or no a switch."""
    path = runbook(tmp_path, "true", parameters="RUNS='11'\nWIPE='no'\nNAME='www'")

    with pytest.raises(RunbookError, match=f"must be {shape} \\(like its default"):
        validate_parameters(path, given)
    validate_parameters(path, {"RUNS": "7", "WIPE": "yes", "NAME": "42"})
