"""`proven verify`: prove the guides still work on a fresh lab VM, then build the site.

The phases, each timed and recorded in the report: host, box, VM up, each runbook, its
checks (again after a reboot where the guide asks), site, destroy. The VM is destroyed at the
end, also on failure or Ctrl-C, unless ``keep`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from proven import box, checks, host, inputs, memory, sh, state, targets, vm
from proven.errors import ProvenError
from proven.guides import BUILD, GUIDES, ROOT, Guide
from proven.report import (
    CARRIED,
    DONE,
    FAILED,
    NOT_RUN,
    PASSED,
    Check,
    Phase,
    Report,
    RunbookReport,
    now,
)
from proven.runbook import (
    StepFailed,
    Target,
    check_known_parameters,
    defaults,
    execute,
    own_parameters,
    validate_parameters,
)

log = logging.getLogger("proven")

REPORT = BUILD / "report.json"
MEASUREMENT = "PROVEN-MEASUREMENT "  # prefix of a line a runbook prints to record a figure


@dataclass
class Options:
    """What the user asked of this run."""

    guides: list[Guide]
    keep: bool = False
    disks: int = 2
    site: bool = True
    install: bool = True
    force: bool = False  # run every guide even when its inputs are unchanged
    second_run: bool = True  # run each runbook again and compare the machine before and after
    step_timeout: int = int(os.environ.get("PROVEN_STEP_TIMEOUT", "1800"))
    extra: dict = field(default_factory=dict)  # parameters for every runbook, from the CLI


class Run:
    """One verify run: its report, and a timer that records each phase into it."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.sampler: memory.PeakSampler | None = None
        self.started_host = False  # this run started libvirtd and virtlogd: it stops them

    @contextmanager
    def phase(self, name: str, proves: bool = False):
        """Time one phase; it ends `passed` when it `proves` a guide (a runbook, its checks),
        `done` when it only made the ground for one, `failed` on any exception."""
        start = time.monotonic()
        entry = Phase(name=name, outcome=NOT_RUN, duration_s=0.0)
        self.report.phases.append(entry)
        log.info("== %s", name)
        try:
            yield entry
        except BaseException as exc:
            entry.outcome = FAILED
            if isinstance(exc, KeyboardInterrupt):
                entry.detail = "interrupted (Ctrl-C or SIGTERM)"
            entry.detail = entry.detail or (str(exc).splitlines() or [type(exc).__name__])[0]
            raise
        else:
            if entry.outcome == NOT_RUN:
                entry.outcome = PASSED if proves else DONE
        finally:
            entry.duration_s = round(time.monotonic() - start, 1)
            self.report.write(REPORT)


def run_parameters(guide: Guide, opts: Options) -> dict:
    """The lab's values for ``guide``, overridden by the command line's that it has."""
    return {**guide.lab_parameters, **own_parameters(guide.runbook, opts.extra)}


def verify(opts: Options) -> int:
    """Run the pipeline; return the exit status (0 only when every runbook passed)."""
    report = Report(
        commit=git("rev-parse", "HEAD"), commit_dirty=bool(git("status", "--porcelain"))
    )
    previous = load_previous()
    # The box this run stands on, named even when nothing runs and no box is built.
    report.box = {"name": box.name(), "recipe": box.recipe_hash()}
    report.runbooks = [RunbookReport(slug=g.slug, title=g.title) for g in opts.guides]
    run = Run(report)
    signal.signal(signal.SIGTERM, _interrupt)
    env: dict[str, str] = {}
    try:
        for guide, rb in zip(opts.guides, report.runbooks, strict=True):
            rb.parameters = run_parameters(guide, opts)
            validate_parameters(guide.runbook, rb.parameters)
            rb.inputs = inputs.digest(guide, rb.parameters, opts.disks, opts.second_run)
        check_known_parameters([g.runbook for g in opts.guides], opts.extra)
        to_run = opts.guides if opts.force else carry_over(report, previous, opts.guides)
        keep_unselected(report, previous, opts)
        if not to_run:
            log.info("verify: nothing changed since the last passing run; no VM needed")
            return finish_and_summarise(run, opts, env)

        run.sampler = memory.PeakSampler().start()
        # Daemons an earlier verify --keep left are this run's to stop; a lab's are not.
        run.started_host = host.running_pid("libvirtd") is None or host.KEPT.exists()
        host.KEPT.unlink(missing_ok=True)
        with run.phase("host"):
            host.prepare(install=opts.install)
            vm.clear_leftovers()
        with run.phase("box"):
            report.box |= box.ensure()
        report.tools = tool_versions()
        with run.phase("VM up"):
            env = vm.settings(disks=opts.disks)
            report.host |= {
                "os": os_release(),
                "accel": env["PROVEN_ACCEL"],
                "disks": opts.disks,
                "python": platform.python_version(),
            }
            ssh_config = vm.up(env)
        target = Target(kind="ssh", ssh_config=ssh_config, netns=host.NETNS, sudo=True)
        with run.phase("disks"):
            check_disks(report, to_run, target)

        for guide in to_run:
            if not run_guide(run, guide, target, opts):
                break
        if all(report.runbook(g.slug).outcome == PASSED for g in to_run):
            reboot_and_recheck(run, to_run, ssh_config)
    except KeyboardInterrupt:
        report.error = "interrupted (Ctrl-C or SIGTERM)"
        for rb in report.runbooks:  # the one that was running when the interrupt came
            if rb.executed_notebook and rb.outcome == NOT_RUN:
                rb.outcome, rb.error = FAILED, report.error
        log.error("verify: interrupted; cleaning up")
    except ProvenError as exc:
        report.error = str(exc)
        log.error("verify failed: %s", exc)
    except Exception as exc:  # the report must say what broke, whatever it was
        report.error = f"{type(exc).__name__}: {exc}"
        log.exception("verify: unexpected error")
    return finish_and_summarise(run, opts, env)


def finish_and_summarise(run: Run, opts: Options, env: dict[str, str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
    if run.sampler:
        run.sampler.stop()
        run.report.host["memory_mib"] = {"baseline": run.sampler.baseline, "peak": run.sampler.peak}
    try:
        finish(run, opts, env)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print_summary(run.report)
    return 0 if run.report.outcome == PASSED else 1


def measurements(executed: Path) -> dict:
    """The figures a runbook printed as ``PROVEN-MEASUREMENT {json}`` lines, by name."""
    found = {}
    for cell in json.loads(executed.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            for line in (text if isinstance(text, str) else "".join(text)).splitlines():
                if line.startswith(MEASUREMENT):
                    try:
                        data = json.loads(line.removeprefix(MEASUREMENT))
                    except ValueError:
                        log.warning("verify: unreadable measurement line: %s", line)
                        continue
                    found[data.get("name", f"m{len(found)}")] = data
    return found


def load_previous() -> Report | None:
    """The last run's report, if it can be read (an unreadable one is simply not used)."""
    try:
        return Report.load(REPORT)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("verify: ignoring unreadable %s: %s", os.path.relpath(REPORT, ROOT), exc)
        return None


def carry_over(report: Report, previous: Report | None, guides: list[Guide]) -> list[Guide]:
    """Carry over passing results whose inputs are unchanged; return the guides to run.

    A guide that must run brings the guides it needs along, since each run starts from a
    fresh VM.
    """
    must_run: set[str] = set()
    for guide in guides:
        rb = report.runbook(guide.slug)
        old = previous.runbook(guide.slug) if previous else None
        if not provable_by(old, rb.inputs):
            must_run.add(guide.slug)
            continue
        report.runbooks[report.runbooks.index(rb)] = carried(old, previous)
    for guide in guides:
        if guide.slug in must_run:
            must_run.update(guide.needs)
    selected = [g for g in guides if g.slug in must_run]
    for guide in guides:
        rb = report.runbook(guide.slug)
        if rb.outcome != CARRIED:
            continue
        if guide in selected:  # run again for a guide that needs it: forget what was carried
            report.runbooks[report.runbooks.index(rb)] = RunbookReport(
                slug=guide.slug, title=guide.title, parameters=rb.parameters, inputs=rb.inputs
            )
        else:
            log.info("verify: %s unchanged since %s: carried over", guide.slug, rb.carried_from)
    return selected


def provable_by(old: RunbookReport | None, inputs_now: str) -> bool:
    """Whether an earlier result still stands: it passed, on the same inputs, and its
    executed notebook is there to show."""
    return (
        old is not None
        and old.outcome in (PASSED, CARRIED)
        and old.inputs == inputs_now
        and (ROOT / old.executed_notebook).exists()
    )


def carried(old: RunbookReport, previous: Report) -> RunbookReport:
    """``old`` as carried over, with the date and commit of the run that proved it."""
    kept = RunbookReport(**{**old.__dict__, "outcome": CARRIED})
    kept.carried_from = old.carried_from or previous.finished
    kept.carried_commit = old.carried_commit or previous.commit
    return kept


def keep_unselected(report: Report, previous: Report | None, opts: Options) -> None:
    """Keep the earlier passing result of each guide this run was not asked to run.

    After `verify 03` the site still shows what an earlier run proved of the other guides, as
    carried over, when their inputs are the same as then. A run of runbooks outside
    runbooks/ (drafts, test cases) reports those runbooks alone.
    """
    project = {g.slug for g in GUIDES}
    chosen = {g.slug for g in opts.guides}
    if previous is None or not chosen <= project:
        return
    for guide in GUIDES:
        old = previous.runbook(guide.slug)
        if guide.slug in chosen or old is None:
            continue
        now_in = inputs.digest(guide, run_parameters(guide, opts), opts.disks, opts.second_run)
        if not provable_by(old, now_in):
            continue
        kept = carried(old, previous)
        report.runbooks.append(kept)
        log.info(
            "verify: %s not asked for; its result of %s carried over", guide.slug, kept.carried_from
        )
    order = [g.slug for g in GUIDES]
    report.runbooks.sort(key=lambda rb: order.index(rb.slug))


def check_disks(report: Report, guides: list[Guide], target: Target) -> None:
    """Stop before any step when a runbook names a disk the VM does not have."""
    for guide in guides:
        rb = report.runbook(guide.slug)
        missing = targets.missing_disks(target, {**defaults(guide.runbook), **rb.parameters})
        if missing:
            rb.outcome = FAILED
            rb.error = f"runbook {guide.slug}: no such disk on the VM: {', '.join(missing)}"
            raise ProvenError(
                rb.error,
                hint="name disks the VM has, e.g. -p DISKS='/dev/vdb /dev/vdc' "
                "(with --disks 4 it also has /dev/vdd and /dev/vde)",
            )


def run_guide(run: Run, guide: Guide, target: Target, opts: Options) -> bool:
    """Execute one runbook and its checks; return whether both passed."""
    rb = run.report.runbook(guide.slug)
    rb.executed_notebook = str(guide.executed.relative_to(ROOT))
    with run.phase(f"runbook {guide.slug}", proves=True) as phase:
        try:
            result = execute(
                guide.runbook, guide.executed, rb.parameters, target, step_timeout=opts.step_timeout
            )
            rb.steps, rb.steps_run = result.steps, result.steps_run
            rb.measurements = measurements(guide.executed)
        except StepFailed as exc:
            rb.outcome, rb.error = FAILED, str(exc)
            rb.failed_step = f"{exc.step} {exc.title}"
            if exc.result is not None:
                rb.steps, rb.steps_run = exc.result.steps, exc.result.steps_run
            phase.outcome, phase.detail = FAILED, f"step {exc.step} '{exc.title}'"
            log.error("%s", exc)
    rb.duration_s = phase.duration_s
    if rb.outcome == FAILED:
        return False

    with run.phase(f"checks {guide.slug}", proves=True) as phase:
        rb.checks = checks.run_guide(guide, "after runbook", rb.parameters, target.ssh_config)
        rb.outcome = PASSED if rb.checks_failed == 0 and rb.checks else FAILED
        phase.outcome = rb.outcome
        phase.detail = f"{rb.checks_passed} passed, {rb.checks_failed} failed"
    if rb.outcome == PASSED and opts.second_run:
        run_again(run, guide, target, opts)
    return rb.outcome == PASSED


SECOND = "second run"  # the stage of the checks a second run adds


def run_again(run: Run, guide: Guide, target: Target, opts: Options) -> None:
    """Run the runbook a second time; it must pass and change nothing that matters."""
    rb = run.report.runbook(guide.slug)
    executed = BUILD / "executed-second" / guide.executed.name
    with run.phase(f"second run {guide.slug}", proves=True) as phase:
        paths = canary_paths(guide, rb.parameters)
        laid = state.lay_canaries(on_vm, paths) if paths else {}
        before = state.snapshot(on_vm)
        try:
            execute(guide.runbook, executed, rb.parameters, target, step_timeout=opts.step_timeout)
            passed = Check("second run passes", PASSED, SECOND)
        except StepFailed as exc:
            passed = Check("second run passes", FAILED, SECOND, str(exc))
        except BaseException:  # Ctrl-C: a guide whose second run did not end is not proven
            rb.outcome, rb.error = FAILED, "its second run was interrupted"
            raise
        changed = state.differences(before, state.snapshot(on_vm))
        kept = Check(
            "second run changes no array, volume, file in /etc, /opt, /srv or /var/www, or package",
            FAILED if changed else PASSED,
            SECOND,
            "\n".join(changed),
        )
        rb.checks += [passed, kept]
        if paths:
            spoiled = state.spoiled_canaries(on_vm, laid)
            rb.checks.append(
                Check(
                    "canaries written after the first run are intact",
                    FAILED if spoiled else PASSED,
                    SECOND,
                    "\n".join(spoiled) or "intact: " + ", ".join(laid),
                )
            )
        for line in changed:
            log.error("verify: %s: the second run changed %s", guide.slug, line)
        if any(c.outcome == FAILED for c in rb.checks if c.stage == SECOND):
            rb.outcome = phase.outcome = FAILED
        phase.detail = f"{len(changed)} changes"


def canary_paths(guide: Guide, parameters: dict) -> list[str]:
    """The guide's canary paths with the run's parameters filled in."""
    values = {**defaults(guide.runbook), **parameters}
    return [path.format(**values) for path in guide.canaries]


def on_vm(script: str) -> str:
    """Run ``script`` as root on the lab VM and return its output; an error if it fails."""
    proc = vm.ssh("sudo -n bash -c " + shlex.quote(script), timeout=600)
    if proc.returncode != 0:
        raise ProvenError(
            f"could not read the VM's state (exit {proc.returncode}): {proc.stderr.strip()}",
            hint="rerun with --keep and log in to the VM to see why",
        )
    return proc.stdout


def reboot_and_recheck(run: Run, ran: list[Guide], ssh_config: Path) -> None:
    """Reboot once and run again the checks of guides whose state must survive a reboot."""
    guides = [g for g in ran if g.reboot_after]
    if not guides:
        return
    with run.phase("reboot"):
        vm.reboot()
    for guide in guides:
        rb = run.report.runbook(guide.slug)
        with run.phase(f"checks {guide.slug} after reboot", proves=True) as phase:
            found = checks.run_guide(guide, "after reboot", rb.parameters, ssh_config)
            rb.checks.extend(found)
            if rb.checks_failed:
                rb.outcome = FAILED
            phase.outcome = FAILED if any(c.outcome == FAILED for c in found) else PASSED
            phase.detail = f"{sum(c.outcome == PASSED for c in found)} passed"


def finish(run: Run, opts: Options, env: dict[str, str]) -> None:
    """Destroy the VM (unless kept), settle the outcome, write the report, build the site."""
    report = run.report
    # A run that carried everything over, or stopped before its VM phase, made no VM.
    made_vm = any(p.name == "VM up" for p in report.phases)
    if made_vm and opts.keep:
        if run.started_host:
            host.KEPT.parent.mkdir(parents=True, exist_ok=True)
            host.KEPT.touch()
        log.info(
            "verify: VM kept; log in with: ip netns exec %s ssh -F %s default",
            host.NETNS,
            vm.SSH_CONFIG.relative_to(ROOT),
        )
    elif made_vm or run.started_host:
        try:
            with run.phase("destroy"):
                if made_vm:
                    vm.destroy(env or None)
                if run.started_host:
                    host.teardown()
        except Exception as exc:
            report.error = report.error or f"destroy failed: {exc}"
            log.error("verify: destroying the VM failed: %s", exc)
    ran = report.runbooks
    passed = ran and not report.error and all(r.outcome in (PASSED, CARRIED) for r in ran)
    report.outcome = PASSED if passed else FAILED
    report.finished = now()
    report.write(REPORT)
    if opts.site:
        try:
            with run.phase("site"):
                build_site()
        except Exception as exc:
            report.outcome = FAILED
            report.error = report.error or f"site build failed: {exc}"
        report.write(REPORT)


def build_site() -> None:
    """`mkdocs build --strict`; the pages take their status from the report just written."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),  # a notice, not a warning about us
    )
    if proc.returncode != 0:
        raise ProvenError(
            f"mkdocs build --strict failed:\n{proc.stderr[-3000:]}",
            hint="fix the page it names, then run `nox -s docs`",
        )


def print_summary(report: Report) -> None:
    """The closing table: phases with timings, then each runbook."""
    lines = ["", "phase                                  outcome       seconds"]
    for p in report.phases:
        lines.append(f"{p.name:<38} {p.outcome:<12} {p.duration_s:>8.1f}  {p.detail}")
    total = sum(p.duration_s for p in report.phases)
    lines.append(f"{'total':<38} {'':<12} {total:>8.1f}")
    lines += ["", "runbook          outcome      seconds  steps    checks"]
    for r in report.runbooks:
        lines.append(
            f"{r.slug:<16} {r.outcome:<12} {r.duration_s:>7.1f}  "
            f"{r.steps_run:>2}/{r.steps:<3}  "
            + (f"{r.checks_passed} passed, {r.checks_failed} failed" if r.checks else "none run")
        )
    lines.append("")
    lines.append(
        f"verify {report.outcome}" + (f": {report.error.splitlines()[0]}" if report.error else "")
    )
    mem = report.host.get("memory_mib")
    if mem:
        lines.append(f"host memory in use: {mem['baseline']} MiB before, {mem['peak']} MiB at peak")
    lines.append(f"report: {os.path.relpath(REPORT, ROOT)}")
    print("\n".join(lines), flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def git(*args: str) -> str:
    return sh.run(["git", "-C", str(ROOT), *args], check=False).strip()


def os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def tool_versions() -> dict[str, str]:
    """Versions of what the result depends on, as each tool reports itself."""

    def first_line(cmd: list[str]) -> str:
        try:
            return sh.run(cmd, check=False).strip().splitlines()[0]
        except (IndexError, OSError):
            return "not found"

    versions = {
        "vagrant": first_line(["vagrant", "--version"]).removeprefix("Vagrant "),
        "vagrant-libvirt": first_line(["dpkg-query", "-W", "-f=${Version}", "vagrant-libvirt"]),
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "libvirt": first_line(["libvirtd", "--version"]),
    }
    for dist in (
        "papermill",
        "pytest-testinfra",
        "python-vagrant",
        "mkdocs",
        "mkdocs-material",
        "mkdocs-jupyter",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions
