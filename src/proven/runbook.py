"""Running one runbook with papermill, so that any failing command fails the run and names its step.

Shell runbooks run on the ``proven-shell`` kernel (see kernel.py) rather than bash_kernel, which
carries on after a failing command in the middle of a cell and reports success for a cell that
calls ``exit``. Python runbooks run on ``python3`` with a startup file that makes a failing
``!cmd`` raise.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill
from jupyter_client.kernelspec import NoSuchKernel
from nbclient.exceptions import DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.translators import papermill_translators

from proven import kernel
from proven.errors import ProvenError
from proven.guides import ROOT

log = logging.getLogger("proven")

STARTUP = Path(__file__).parent / "ipython_startup"
OUTPUT_LINES = 40  # of a failed step's output, kept in the error
PARAMETER_TAGS = {"parameters", "injected-parameters"}
LEVEL = {"passed": logging.INFO, "failed": logging.ERROR}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)[\s#]*$", re.MULTILINE)
_NUMBERED = re.compile(r"^\d+[.)]\s+")  # "## 3. Partition the disks": the step count says it


class RunbookError(ProvenError):
    """A runbook that cannot be run as asked: a bad parameter or an unusable notebook."""


@dataclass(eq=False)
class StepFailed(ProvenError):
    """A step of a runbook failed; ``output`` is the end of what it printed."""

    runbook: str
    step: int  # 1-based among the code steps; 0 for the parameters or the kernel's start
    title: str
    output: str
    reason: str
    hint: str = ""
    result: RunbookResult | None = field(default=None, repr=False)  # set by execute()

    def __post_init__(self) -> None:
        text = f"runbook {self.runbook}, step {self.step} '{self.title}' failed: {self.reason}"
        if self.output.strip():
            text += f"\n--- output ---\n{self.output.rstrip()}"
        super().__init__(text, self.hint)


@dataclass
class RunbookResult:
    """What one run of a runbook came to."""

    runbook: str
    outcome: str  # "passed" or "failed"
    steps: int
    steps_run: int
    duration_s: float
    executed: Path
    failure: StepFailed | None = None


@dataclass(frozen=True)
class Target:
    """The machine a runbook's shell steps run on, as the proven-shell kernel reads it."""

    kind: str  # "local" (this machine) or "ssh"
    ssh_config: Path | None = None
    host: str = "default"
    netns: str | None = None
    sudo: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ssh"):
            raise RunbookError(f"target kind must be 'local' or 'ssh', not {self.kind!r}")

    def env(self) -> dict[str, str]:
        """The PROVEN_* variables that point the kernel at this target."""
        return {
            "PROVEN_TARGET": self.kind,
            "PROVEN_SSH_CONFIG": str(self.ssh_config or ""),
            "PROVEN_SSH_HOST": self.host,
            "PROVEN_NETNS": self.netns or "",
            "PROVEN_SUDO": "1" if self.sudo else "0",
        }


def execute(
    runbook: Path,
    executed: Path,
    parameters: dict,
    target: Target,
    step_timeout: int = 1800,
    check: bool = True,
    echo: bool = False,
) -> RunbookResult:
    """Run ``runbook`` on ``target``, writing the executed notebook also when a step fails.

    A failed step raises StepFailed (its ``result`` is the RunbookResult) unless ``check`` is
    false, in which case the result comes back with outcome "failed" and the ``failure``.
    ``echo`` also prints each step's output to this process's stdout as it arrives.
    """
    name = runbook.stem
    nb = _load(runbook)
    validate_parameters(runbook, parameters)
    ship(runbook, target)
    shell = _is_shell(nb)
    env = {**target.env(), "PROVEN_STEP_TIMEOUT": str(step_timeout)}
    progress = _Progress(name)
    executed.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failure = None

    log.info("runbook %s: running on %s, executed notebook %s", name, target.kind, executed)
    with _quiet("papermill"), tempfile.TemporaryDirectory(prefix="proven-ipython-") as ipython_dir:
        if shell:
            kernel.ensure_installed()
        else:
            env["IPYTHONDIR"] = _strict_profile(Path(ipython_dir))
        try:
            papermill.execute_notebook(
                str(runbook),
                str(executed),
                parameters=parameters,
                engine_name=_Engine.NAME,
                kernel_name=kernel.NAME if shell else "python3",
                language="bash" if shell else "python",
                progress_bar=False,
                stdout_file=sys.stdout if echo else None,
                stderr_file=sys.stderr if echo else None,
                # The kernel stops a shell step itself at step_timeout; this is the backstop.
                execution_timeout=step_timeout + 60,
                kernel_env=env,
                progress=progress,
            )
        except PapermillExecutionError as err:
            failure = progress.failure(err.cell_index, _reason(err.ename, err.evalue))
        except TimeoutError:
            failure = progress.failure(None, f"no reply within {step_timeout + 60} s")
        except (DeadKernelError, RuntimeError) as err:
            failure = progress.failure(None, f"the kernel stopped: {err}")
        except NoSuchKernel as err:
            raise RunbookError(
                f"runbook {name}: no Jupyter kernel {err}", "install the project: pip install -e ."
            ) from err
        except KeyboardInterrupt:
            _keep(nb, executed)
            # nbclient's cell task ends with the interrupted step's error after we stopped
            # waiting for it; asyncio would print that as a traceback at exit. The line below
            # is the message that counts.
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
            log.error("runbook %s: interrupted in step %s", name, progress.step_label())
            raise
    _keep(nb, executed)

    if failure is not None:
        failure.hint = f"the executed notebook {executed} has the step's full output"
    outcome = "failed" if failure else "passed"
    result = RunbookResult(
        runbook=name,
        outcome=outcome,
        steps=len(_steps(nb)),
        steps_run=progress.steps_run,
        duration_s=round(time.monotonic() - started, 1),
        executed=executed,
        failure=failure,
    )
    log.log(LEVEL[outcome], "runbook %s: %s in %.1f s", name, outcome, result.duration_s)
    if failure is not None and check:
        failure.result = result
        raise failure
    return result


def plan(runbook: Path, parameters: dict) -> str:
    """Every step's title and commands, with the parameters filled in; runs nothing."""
    nb = _load(runbook)
    validate_parameters(runbook, parameters)
    shell = _is_shell(nb)
    translator = papermill_translators.find_translator(
        kernel.NAME if shell else "python3", "bash" if shell else "python"
    )
    values = {**_defaults(runbook, nb), **parameters}
    steps = _steps(nb)
    lines = [f"runbook {runbook.stem}: {len(steps)} steps (a plan: nothing was run)", ""]
    shipped = shipped_files(runbook)
    if shipped:
        lines.append("before step 1, copied onto the target (mode 0755)")
        lines.extend(f"  {source.relative_to(ROOT)} -> {dest}" for dest, source in shipped)
        lines.append("")
    if values:
        lines.append("parameters")
        for key, value in values.items():
            given = "  # given" if key in parameters else ""
            lines.append(f"  {translator.assign(key, translator.translate(value))}{given}")
        lines.append("")
    shown = {k: _shell_text(v) for k, v in values.items()}
    for index, (number, title) in steps.items():
        code = nb.cells[index].source
        if shell and kernel.is_definition_cell(code):
            derived = _derive(code, shown)
            shown.update(derived)
            lines.append(f"step {number}/{len(steps)}: {title}  (values derived for this plan)")
            lines.extend(f"  {k}='{v}'" for k, v in derived.items())
            lines.append("")
            continue
        if shell:
            code = _fill(code, shown)
        lines.append(f"step {number}/{len(steps)}: {title}")
        lines.extend(f"  {line}".rstrip() for line in code.rstrip().splitlines())
        lines.append("")
    return "\n".join(lines)


def shipped_files(runbook: Path) -> list[tuple[str, Path]]:
    """(path on the target, file here) for each file the runbook needs on its target.

    A runbook lists them in its metadata, ``"proven": {"ship": {"/usr/local/bin/x":
    "src/proven/x.py"}}``, with sources relative to the project: a tool of this project that
    the runbook's steps call on the target, where no package of it is installed.
    """
    wanted = _load(runbook).metadata.get("proven", {}).get("ship", {})
    files = []
    for dest, source in wanted.items():
        path = ROOT / source
        if not dest.startswith("/") or not path.is_file():
            raise RunbookError(
                f"runbook {runbook.stem}: cannot ship {source!r} to {dest!r}",
                "the metadata's proven.ship maps absolute target paths to files of the project",
            )
        files.append((dest, path))
    return files


def ship(runbook: Path, target: Target, timeout: int = 120) -> None:
    """Copy the runbook's shipped files onto ``target``, each replaced in one rename."""
    settings = kernel.Settings.from_env({**target.env(), "PROVEN_STEP_TIMEOUT": str(timeout)})
    for dest, source in shipped_files(runbook):
        data = base64.b64encode(source.read_bytes()).decode()
        new = shlex.quote(dest + ".new")
        script = (
            f"mkdir -p {shlex.quote(os.path.dirname(dest))}\n"
            f"base64 -d > {new} <<'SHIPPED'\n{data}\nSHIPPED\n"
            f"chmod 0755 {new}\nmv -f {new} {shlex.quote(dest)}\n"
        )
        try:
            proc = subprocess.run(
                settings.command(script, "proven-ship"),
                capture_output=True,
                text=True,
                timeout=timeout + 30,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            why = "no answer" if proc is None else proc.stderr.strip() or f"exit {proc.returncode}"
            raise RunbookError(
                f"runbook {runbook.stem}: could not copy {source.name} to {dest} on the "
                f"target before step 1: {why}",
                "check that the target is reachable and that sudo works there",
            )
        log.info("runbook %s: copied %s to %s on the target", runbook.stem, source.name, dest)


def _derive(code: str, values: dict[str, str]) -> dict[str, str]:
    """Evaluate a definition cell (assignments only, no command substitution) with ``values``.

    The kernel's grammar for definition cells admits no command, so a restricted bash with
    an empty environment evaluates it here without running anything on any machine.
    """
    names = list(dict.fromkeys(m.group(1) for m in kernel.ASSIGNMENT.finditer(code)))
    script = "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
    script += code + "\n" + "".join(f'printf "%s\\0" "${{{n}[*]}}"\n' for n in names)
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-r", "-c", script],
        env={},
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RunbookError(f"cannot evaluate definitions for the plan: {proc.stderr.strip()}")
    return dict(zip(names, proc.stdout.split("\0"), strict=False))


def defaults(runbook: Path) -> dict[str, object]:
    """The runbook's parameters and their literal defaults."""
    return _defaults(runbook, _load(runbook))


def own_parameters(runbook: Path, given: dict) -> dict:
    """Those of ``given`` (the command line's, meant for every runbook) that ``runbook`` has."""
    names = defaults(runbook)
    return {k: v for k, v in given.items() if k in names}


def check_known_parameters(runbooks: list[Path], given: dict) -> None:
    """Raise RunbookError for a parameter of ``given`` that none of ``runbooks`` has."""
    known = set().union(*(defaults(r) for r in runbooks))
    unknown = sorted(set(given) - known)
    if unknown:
        raise RunbookError(
            f"no runbook of this run ({', '.join(r.stem for r in runbooks)}) has the "
            f"parameter(s) {', '.join(unknown)}; theirs: {', '.join(sorted(known)) or 'none'}",
            "check the spelling against the runbooks' parameters cells",
        )


def validate_parameters(runbook: Path, parameters: dict) -> None:
    """Raise RunbookError for a parameter the runbook does not have or of the wrong type."""
    defaults = _defaults(runbook, _load(runbook))
    known = ", ".join(defaults) or "none"
    for key, value in parameters.items():
        if key not in defaults:
            raise RunbookError(
                f"runbook {runbook.stem} has no parameter {key!r}; its parameters: {known}",
                "check the spelling against the runbook's parameters cell",
            )
        default = defaults[key]
        switch = _string_kind(default)
        if switch and isinstance(value, str) and not switch[1].fullmatch(value):
            raise RunbookError(
                f"runbook {runbook.stem}: parameter {key!r} must be {switch[0]} (like its "
                f"default {default!r}), not {value!r}; its parameters: {known}",
                f"pass {key} as {switch[0]}",
            )
        if not _same_kind(default, value):
            expected = type(default).__name__
            raise RunbookError(
                f"runbook {runbook.stem}: parameter {key!r} must be a {expected} "
                f"(like its default {default!r}), not {type(value).__name__} {value!r}; "
                f"its parameters: {known}",
                f"pass {key} as a {expected}",
            )


class _Progress:
    """Which step is running: for the log, and to name the step that failed."""

    def __init__(self, runbook: str) -> None:
        self.runbook = runbook
        self.steps: dict[int, tuple[int, str]] = {}
        self.cells: list = []
        self.current: int | None = None
        self.steps_run = 0

    def begin(self, nb) -> None:
        # A copy of the list: papermill later inserts error cells into the notebook.
        self.steps, self.cells = _steps(nb), list(nb.cells)

    def cell_started(self, cell, cell_index: int, **_) -> None:
        self.current = cell_index
        if cell_index in self.steps:
            number, title = self.steps[cell_index]
            self.steps_run = number
            log.info("runbook %s: step %d/%d %s", self.runbook, number, len(self.steps), title)

    def step_label(self) -> str:
        number, title = self.steps.get(self.current, (0, "parameters"))
        return f"{number} '{title}'"

    def failure(self, cell_index: int | None, reason: str) -> StepFailed:
        """The StepFailed for the cell at ``cell_index`` (the running one when None)."""
        index = self.current if cell_index is None else cell_index
        if index is None:
            number, title, output = 0, "starting the kernel", ""
        else:
            number, title = self.steps.get(index, (0, "parameters"))
            output = _output(self.cells[index]) if index < len(self.cells) else ""
        return StepFailed(self.runbook, number, title, output, reason)


class _Engine(NBClientEngine):
    """papermill's nbclient engine, plus the kernel's environment and step progress."""

    NAME = "proven"

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        kernel_env=None,
        progress=None,
        **kwargs,
    ):
        progress.begin(nb_man.nb)
        client = PapermillNotebookClient(
            nb_man,
            kernel_name=kernel_name,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            log=logging.getLogger("papermill"),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            on_cell_execute=progress.cell_started,
        )
        # The kernel inherits this process's environment plus the target's variables.
        return client.execute(env={**os.environ, **kernel_env})


papermill_engines.register(_Engine.NAME, _Engine)


@contextlib.contextmanager
def _quiet(name: str):
    """Only errors from logger ``name`` for a while.

    papermill warns that the bash translator cannot list parameters and then calls every
    parameter unknown; validate_parameters has checked them already.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load(runbook: Path):
    """The notebook at ``runbook``, or a RunbookError that says why it cannot be read."""
    try:
        return nbformat.read(runbook, as_version=4)
    except (OSError, ValueError) as err:
        raise RunbookError(
            f"runbook {runbook.stem}: cannot read {runbook}: {err}", "check the path"
        ) from err


def _keep(nb, executed: Path) -> None:
    """Write the unexecuted notebook where the executed one goes if papermill wrote none."""
    if not executed.exists():
        nbformat.write(nb, executed)


def _is_shell(nb) -> bool:
    """Whether the notebook's cells are shell (bash_kernel, proven-shell) rather than Python."""
    spec = nb.metadata.get("kernelspec", {})
    language = spec.get("language") or nb.metadata.get("language_info", {}).get("name", "")
    return spec.get("name") in ("bash", kernel.NAME) or language == "bash"


def _strict_profile(ipython_dir: Path) -> str:
    """An IPython directory whose default profile loads the strict-shell startup file."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    for source in STARTUP.glob("*.py"):
        shutil.copy(source, startup / source.name)
    # ipykernel warns on every start that its local TCP sockets are not encrypted.
    config = ipython_dir / "profile_default" / "ipython_kernel_config.py"
    config.write_text('c.IPKernelApp.log_level = "ERROR"\n')
    return str(ipython_dir)


def _steps(nb) -> dict[int, tuple[int, str]]:
    """Cell index -> (step number, title) for every code cell that is a step."""
    steps: dict[int, tuple[int, str]] = {}
    recent, last = "", ""  # the heading since the previous code cell, and any heading
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            headings = _HEADING.findall(cell.source)
            if headings:
                recent = last = _NUMBERED.sub("", headings[-1])
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if not PARAMETER_TAGS.intersection(cell.metadata.get("tags", [])):
            number = len(steps) + 1
            steps[index] = (number, recent or _comment(cell.source) or last or f"step {number}")
        recent = ""
    return steps


def _comment(source: str) -> str:
    """The text of the first comment line in ``source`` ('' if none)."""
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("#!") and text.strip("# "):
            return text.lstrip("# ").strip()
    return ""


def _output(cell) -> str:
    """The last lines a cell printed, errors included, without terminal colours."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error" and out.ename != "StepFailed":  # its reason is the title
            parts.append("\n".join(out.traceback) or f"{out.ename}: {out.evalue}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    lines = _ANSI.sub("", "".join(p if p.endswith("\n") else p + "\n" for p in parts))
    return "\n".join(lines.splitlines()[-OUTPUT_LINES:])


def _reason(ename: str, evalue: str) -> str:
    """The error of a failed cell in one line."""
    evalue = _ANSI.sub("", evalue)
    return evalue if ename == "StepFailed" else f"{ename}: {evalue}"


def _defaults(runbook: Path, nb) -> dict[str, object]:
    """The parameters cell's names and literal default values, in order."""
    cell = next(
        (
            c
            for c in nb.cells
            if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])
        ),
        None,
    )
    if cell is None:
        return {}
    if _is_shell(nb):
        code = re.sub(r"(?m)^[ \t]*#.*$", "", cell.source)
        return {m[1]: _shell_value(m[2]) for m in kernel.ASSIGNMENT.finditer(code)}
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as err:
        raise RunbookError(
            f"runbook {runbook.stem}: the parameters cell is not plain Python: {err}",
            "keep only NAME = literal lines in the cell tagged 'parameters'",
        ) from err
    defaults: dict[str, object] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and node.value is not None:
            try:
                defaults[target.id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                defaults[target.id] = None  # not a literal: any type goes
    return defaults


def _shell_value(raw: str) -> object:
    """The Python value of a shell assignment's value as written (quoted text is a str)."""
    if raw.startswith("("):
        return shlex.split(raw[1:-1])
    if raw[:1] in ("'", '"') or not raw:
        return " ".join(shlex.split(raw)) if raw else ""
    if raw in ("true", "false"):
        return raw == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return " ".join(shlex.split(raw))


def _shell_text(value: object) -> str:
    """How bash sees ``value`` once papermill has assigned it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


# A bash runbook's values are all strings; its defaults say which ones hold a whole number
# (RUNS='11') or a switch (WIPE='no'), and a value of another shape would only fail mid-run.
_WHOLE = ("a whole number", re.compile(r"[0-9]+"))
_SWITCH = ("yes or no", re.compile(r"yes|no"))


def _string_kind(default: object) -> tuple[str, re.Pattern] | None:
    """The shape a string default asks of its values, when it asks one."""
    if isinstance(default, str):
        if _WHOLE[1].fullmatch(default):
            return _WHOLE
        if _SWITCH[1].fullmatch(default):
            return _SWITCH
    return None


def _same_kind(default: object, value: object) -> bool:
    """Whether ``value`` may replace ``default``: bool, int, float and str are kept apart."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


# A backslash escape, a quote, a comment's start, ${NAME:+word} (and :-, +, -), ${NAME}, $NAME.
_SHELL_TOKEN = re.compile(
    r"\\.|'|\"|(?:^|(?<=\s))#|\$\{(\w+)(:?[-+])([^{}]*)\}|\$\{(\w+)\}|\$(\w+)",
    re.DOTALL | re.MULTILINE,
)


_QUOTING = re.compile(r"['\"\\]")


def _fill(code: str, values: dict[str, str]) -> str:
    """``code`` with $NAME and ${NAME} of the given names replaced, as bash would expand them.

    ``${NAME:+word}``, ``${NAME:-word}`` and their forms without the colon become what bash
    makes of them (a value counts as set; ``:`` also asks for it to be non-empty), with the word's
    own $NAMEs filled in; one whose word quotes or escapes is shown as written, since quotes
    inside the braces mean what they would not mean outside them. For display only:
    single-quoted text and comments are left alone;
    heredocs are not parsed, nor are other operators (``${NAME#...}``, ``${#NAME}``).
    """
    out, pos, in_double = [], 0, False
    while match := _SHELL_TOKEN.search(code, pos):
        out.append(code[pos : match.start()])
        token, pos = match.group(), match.end()
        name = match.group(1) or match.group(4) or match.group(5)
        if match.group(2) and name in values and not _QUOTING.search(match.group(3)):
            operator, word = match.group(2), match.group(3)
            present = bool(values[name]) if operator[0] == ":" else True
            if operator[-1] == "+":
                token = _fill(word, values) if present else ""
            else:
                token = values[name] if present else _fill(word, values)
        elif token in ("'", "#") and not in_double:
            end = code.find("'" if token == "'" else "\n", pos)
            end = len(code) if end < 0 else end + (token == "'")
            token, pos = token + code[pos:end], end
        elif token == '"':
            in_double = not in_double
        elif name in values and not match.group(2):
            token = values[name]
        out.append(token)
    out.append(code[pos:])
    return "".join(out)
