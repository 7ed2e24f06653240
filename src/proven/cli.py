"""The `proven` command: verify the guides, manage the lab, run or plan one runbook."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from proven.errors import ProvenError

log = logging.getLogger("proven")

QUIET = ("papermill", "traitlets", "asyncio", "blib2to3", "nbclient", "urllib3", "MARKDOWN")


def setup_logging(verbose: bool) -> None:
    """One handler for the package's logger; chatty libraries only speak up for warnings."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    # python-vagrant warns on import when vagrant is not installed yet; `host prepare`
    # installs it a moment later, and a missing one is reported as a missing package.
    logging.getLogger("vagrant").setLevel(logging.ERROR)


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs from the command line."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ProvenError(f"parameter {pair!r} is not NAME=VALUE", hint="e.g. -p VG_NAME=vg1")
        values[name] = value
    return values


def selected_guides(args) -> list:
    """The runbooks given by path, then the guides named (with what they need), or all."""
    from proven import guides

    selected = [guides.from_path(Path(p)) for p in args.runbook]
    if args.guides or not selected:
        selected += guides.with_needs(args.guides) if args.guides else list(guides.GUIDES)
    return selected


def cmd_verify(args) -> int:
    from proven import verify

    opts = verify.Options(
        guides=selected_guides(args),
        keep=args.keep,
        disks=args.disks,
        site=not args.no_site,
        install=not args.no_install,
        force=args.force,
        second_run=not args.no_second_run,
        extra=parse_parameters(args.param),
    )
    return verify.verify(opts)


def cmd_host(args) -> int:
    from proven import host, vm

    if args.action == "prepare":
        host.prepare(install=not args.no_install)
    else:
        if host.running_pid("libvirtd"):
            vm.destroy()
            from proven import box

            for name in box.installed():
                box.remove_pool_copies(name)
        host.teardown()
    return 0


def cmd_box(args) -> int:
    from proven import box, host

    host.prepare()
    if args.rebuild:
        box.build(box.box_dir())
    print(box.ensure())
    return 0


def cmd_up(args) -> int:
    from proven import box, host, vm

    started = host.running_pid("libvirtd") is None or host.KEPT.exists()
    host.prepare(install=not args.no_install)
    vm.clear_leftovers()
    box.ensure()
    env = vm.settings(disks=args.disks)
    try:
        vm.up(env)
    except BaseException:
        log.error("up: the VM did not come up; removing what was made of it")
        vm.destroy(env)
        if started:
            host.teardown()
        raise
    if started:  # `proven destroy` stops them with the VM
        host.KEPT.parent.mkdir(parents=True, exist_ok=True)
        host.KEPT.touch()
    print(
        f"the lab VM is up ({env['PROVEN_DISKS']} blank disks, accel {env['PROVEN_ACCEL']})\n"
        f"  run a guide on it:  proven run 01-storage --target lab\n"
        f"  log in:             ip netns exec {host.NETNS} ssh -F {vm.SSH_CONFIG} default\n"
        f"  remove it:          proven destroy"
    )
    return 0


def cmd_destroy(args) -> int:
    from proven import host, vm

    # Daemons started for this, or by the verify --keep that left the VM, stop afterwards.
    started = host.running_pid("libvirtd") is None or host.KEPT.exists()
    host.prepare()
    vm.destroy()
    if started:
        host.teardown()
    return 0


def cmd_check(args) -> int:
    from proven import checks, guides, vm
    from proven.report import FAILED

    if not vm.SSH_CONFIG.exists():
        raise ProvenError("no lab VM is up", hint="start one with `proven up`")
    path = Path(args.checks).resolve()
    values = {}
    guide = next((g for g in guides.GUIDES if g.checks == path), None)
    if not path.exists():
        guide = guides.by_slug(args.checks)
        path = guide.checks
    if guide is not None:  # the lab VM's disks are small: start from verify's values
        values.update(guide.lab_parameters)
    values.update(parse_parameters(args.param))
    found = checks.run(
        path,
        "manual",
        values,
        vm.SSH_CONFIG,
        sudo=not args.no_sudo,
    )
    for check in found:
        print(f"{check.outcome:<8} {check.name}" + (f"\n{check.message}" if check.message else ""))
    return 1 if any(c.outcome == FAILED for c in found) else 0


def cmd_run(args) -> int:
    from proven import guides, runbook, targets

    path = Path(args.runbook)
    values = {}
    if not path.exists():
        guide = guides.by_slug(args.runbook)
        path = guide.runbook
        if args.target == "lab":  # the lab VM's disks are small: start from verify's values
            values.update(guide.lab_parameters)
    values.update(parse_parameters(args.param))
    if args.plan:
        print(runbook.plan(path, values))
        return 0
    runbook.validate_parameters(path, values)
    target = targets.parse(args.target)
    missing = targets.missing_disks(target, {**runbook.defaults(path), **values})
    if missing:
        raise ProvenError(
            f"runbook {path.stem}: no such disk on the target: {', '.join(missing)}",
            hint="pass the right disks, e.g. -p DISKS='/dev/vdb /dev/vdc' (see lsblk there)",
        )
    executed = Path(args.executed or f"build/runs/{path.stem}.ipynb").resolve()
    result = runbook.execute(path, executed, values, target, check=False, echo=True)
    print(
        f"\nrunbook {path.stem}: {result.outcome}, {result.steps_run}/{result.steps} steps "
        f"in {result.duration_s:.0f} s on {args.target}\nexecuted notebook: {executed}"
    )
    if result.failure:
        print(str(result.failure))
    return 0 if result.outcome == "passed" else 1


def cmd_lab(args) -> int:
    from proven import lab

    if args.stop:
        return lab.stop()
    opts = lab.Options(
        guides=selected_guides(args),
        target=args.target,
        disks=args.disks,
        install=not args.no_install,
        extra=parse_parameters(args.param),
    )
    return lab.start(opts)


def cmd_fcgid(args) -> int:
    from proven import fcgid

    return fcgid.run(args.file, in_place=args.in_place)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["funambol-check"]:
        from proven import funambol

        return funambol.main(argv[1:], prog="proven funambol-check")
    parser = argparse.ArgumentParser(prog="proven", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="run the guides on a fresh lab VM, check it, build the site")
    p.add_argument("guides", nargs="*", help="guide slugs or numbers (default: all)")
    p.add_argument(
        "--runbook",
        action="append",
        default=[],
        metavar="PATH",
        help="also run this notebook (checks: test_<name>.py beside it)",
    )
    p.add_argument(
        "--keep", action="store_true", help="leave the VM up afterwards, even on failure"
    )
    p.add_argument(
        "--disks",
        type=int,
        choices=(2, 4),
        default=2,
        help="blank extra disks for the VM (4: RAID10 data array)",
    )
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="parameter passed to every runbook",
    )
    p.add_argument("--no-site", action="store_true", help="skip building the site")
    p.add_argument(
        "--no-second-run",
        action="store_true",
        help="run each runbook once (quicker while writing one; a verify for the site runs "
        "each twice and compares the machine before and after)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run every guide, even those unchanged since a passing run",
    )
    p.add_argument(
        "--no-install",
        action="store_true",
        help="do not install missing host packages; say which are missing",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("host", help="prepare or tear down the lab's host side")
    p.add_argument("action", choices=("prepare", "teardown"))
    p.add_argument("--no-install", action="store_true")
    p.set_defaults(func=cmd_host)

    p = sub.add_parser("box", help="build (when its recipe changed) and add the lab box")
    p.add_argument("--rebuild", action="store_true", help="build even if the recipe is unchanged")
    p.set_defaults(func=cmd_box)

    p = sub.add_parser("up", help="bring up a fresh lab VM and leave it up for `run` and `check`")
    p.add_argument("--disks", type=int, choices=(2, 4), default=2, help="blank extra disks")
    p.add_argument("--no-install", action="store_true", help="do not install host packages")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("destroy", help="destroy the lab VM and anything left of earlier runs")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("check", help="run a testinfra checks file against the lab VM")
    p.add_argument("checks", help="a guide slug or number, or the path of a test_*.py module")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--no-sudo", action="store_true", help="run the checks' commands unprivileged")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run one runbook on a target, step by step, with its output")
    p.add_argument("runbook", help="a guide slug or number, or a notebook path")
    p.add_argument(
        "--target", default="lab", help="lab (default), local, or ssh://[user@]host[:port]"
    )
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--plan", action="store_true", help="print every step's commands; run nothing")
    p.add_argument("--executed", metavar="PATH", help="where to save the executed notebook")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "lab", help="a lab VM and a JupyterLab on 127.0.0.1 to run the runbooks cell by cell"
    )
    p.add_argument("guides", nargs="*", help="guide slugs or numbers to open (default: all)")
    p.add_argument("--runbook", action="append", default=[], metavar="PATH", help="also this one")
    p.add_argument(
        "--target",
        default="lab",
        help="lab (default: a fresh lab VM), local, or ssh://[user@]host[:port]",
    )
    p.add_argument("--disks", type=int, choices=(2, 4), default=2, help="blank extra disks")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--no-install", action="store_true", help="do not install host packages")
    p.add_argument("--stop", action="store_true", help="tear down the running lab")
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser("fcgid-rewrite", help="rewrite old mod_fcgid/MPM directive names to today's")
    p.add_argument("file", help="an Apache configuration file, or - for standard input")
    p.add_argument("--in-place", action="store_true", help="rewrite the file itself")
    p.set_defaults(func=cmd_fcgid)

    # Its own parser (proven.funambol) takes the arguments: it also runs as a lone file.
    sub.add_parser("funambol-check", help="does Funambol.xml's serverURI match the clients' URL?")

    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    # Started in the background by a non-interactive shell, SIGINT arrives ignored, and
    # Ctrl-C (or kill -INT) would not stop verify, lab or run and clean up: take it over.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return args.func(args)
    except ProvenError as exc:
        log.error("%s", exc)
        return 2
    except KeyError as exc:
        log.error("%s", exc.args[0])
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`proven run 01 --plan | head`): nothing left to say. Point
        # stdout at /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
