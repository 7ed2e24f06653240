"""Checks for guide 03: Apache's worker MPM hands PHP to mod_fcgid through the wrapper."""

from __future__ import annotations

import re

import pytest

from proven.fcgid import RENAMES

WRAPPER = "/var/www/php-fcgi-starter"
WHOAMI = "http://localhost/check/whoami.php"


@pytest.fixture(scope="module")
def modules(host) -> set[str]:
    """The modules Apache loads, as `apache2ctl -M` names them."""
    out = host.check_output("apache2ctl -M 2>/dev/null")
    return set(re.findall(r"^\s*(\w+) \((?:static|shared)\)$", out, re.M))


def test_worker_mpm_and_fcgid_are_loaded(modules):
    """Apache runs the worker MPM and loads mod_fcgid."""
    assert {"mpm_worker_module", "fcgid_module"} <= modules


def test_no_php_module_and_no_prefork(modules):
    """No Apache PHP module, and not the prefork MPM that one would need."""
    assert not {m for m in modules if m.startswith("php")}
    assert "mpm_prefork_module" not in modules


def test_configtest_says_only_syntax_ok(host):
    """`apache2ctl configtest` passes without a single warning (ServerName is set)."""
    cmd = host.run("apache2ctl configtest")

    assert cmd.rc == 0, cmd.stderr
    assert (cmd.stdout + cmd.stderr).strip() == "Syntax OK"


def test_no_deprecated_directive_name_is_left_under_etc_apache2(host):
    """No configuration line under /etc/apache2 starts with an old mod_fcgid or MPM name."""
    names = "|".join(sorted(RENAMES))
    cmd = host.run(rf"grep -rniE '^\s*({names})(\s|$)' /etc/apache2")

    assert cmd.rc == 1, f"old directive names found:\n{cmd.stdout}"


def test_wrapper_is_an_executable_owned_by_root(host):
    """The wrapper exists, root owns it, everyone may run it and only root may change it."""
    wrapper = host.file(WRAPPER)

    assert wrapper.is_file
    assert wrapper.user == "root"
    assert wrapper.mode & 0o111 == 0o111
    assert wrapper.mode & 0o022 == 0


def test_php_page_reports_the_fastcgi_sapi(host):
    """A PHP page over HTTP runs in PHP's FastCGI interface, cgi-fcgi."""
    out = host.check_output("curl -sS --fail %s", WHOAMI)

    assert out.startswith("sapi=cgi-fcgi "), out


def test_php_processes_run_as_www_data(host):
    """Every PHP process mod_fcgid started runs as www-data, none as root."""
    host.check_output("curl -sS --fail -o /dev/null %s", WHOAMI)

    users = host.check_output("ps -o user= -p \"$(pgrep -d, -f '^/usr/lib/cgi-bin/php')\"")

    assert set(users.split()) == {"www-data"}


def test_2000_sequential_requests_all_answer_200(host):
    """2,000 requests one after the other (four times PHP's old limit of 500) all answer 200."""
    out = host.check_output("ab -n 2000 -c 1 -l http://127.0.0.1/check/whoami.php 2>&1")

    assert re.search(r"^Complete requests:\s+2000$", out, re.M), out
    assert re.search(r"^Failed requests:\s+0$", out, re.M), out
    assert "Non-2xx responses" not in out


def test_post_of_200_kb_reaches_php(host):
    """A 200 KB request body passes mod_fcgid's raised FcgidMaxRequestLen and reaches PHP."""
    cmd = host.run(
        "head -c 204800 /dev/zero | tr '\\0' x | "
        "curl -sS -w ' %{http_code}' --data-binary @- http://localhost/check/post-size.php"
    )

    assert cmd.stdout.split() == ["received=204800", "200"], cmd.stdout + cmd.stderr


def test_directory_without_index_is_not_listed(host):
    """A directory with no index page answers 403, not a list of its files."""
    status = host.check_output(
        "curl -s -o /dev/null -w '%%{http_code}' %s", "http://localhost/check/"
    )

    assert status == "403"


def test_php_page_never_sends_its_source(host):
    """The PHP page answers with what it prints; its code never leaves the server."""
    page = host.check_output("curl -s %s", WHOAMI)

    assert "<?php" not in page and page.startswith("sapi=")
