"""IPython startup for runbooks: a failing ``!cmd`` or ``%%bash`` cell fails the step.

IPython only records a failing ``!cmd`` in ``_exit_code`` and goes on, so a Python runbook
would pass with a broken step. The runner puts this file into the profile of the kernel it
starts; it runs in the user namespace, hence the underscored names and the ``del`` at the end.
"""


def _strict_shell(shell):
    """Make ``shell.system`` raise CalledProcessError on a non-zero exit status."""
    import subprocess

    if shell.has_trait("system_raise_on_error"):
        # IPython's own switch keeps $name expansion looking at the caller's local names.
        shell.system_raise_on_error = True
    else:
        original = shell.system

        # Older IPython: check the status that system() leaves in the user namespace.
        def _system(*args, **kwargs):
            shell.user_ns.pop("_exit_code", None)
            original(*args, **kwargs)
            status = shell.user_ns.get("_exit_code", 0)
            if status:
                raise subprocess.CalledProcessError(status, args[0] if args else "")

        shell.system = _system

    # Current IPython makes %%bash, %%sh and %%script raise on failure (the opt-out is
    # --no-raise-error); older releases raised only when asked, so ask on every call there.
    parser = getattr(shell.find_cell_magic("script"), "parser", None)
    options = parser._option_string_actions if parser is not None else {}
    if "--raise-error" in options and "--no-raise-error" not in options:
        for name in ("bash", "sh", "script"):
            magic = shell.find_cell_magic(name)
            if magic is not None:
                shell.register_magic_function(
                    lambda line, cell, _m=magic: _m("--raise-error " + line, cell),
                    magic_kind="cell",
                    magic_name=name,
                )


_strict_shell(get_ipython())  # noqa: F821 - IPython provides it to startup files
del _strict_shell
