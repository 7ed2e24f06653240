"""Rewriting old mod_fcgid and MPM directive names, on the original post's configuration."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

from proven.fcgid import RENAMES, main, rewrite

# The original post's apache2.conf excerpt, tabs and all (the post shows no closing tags).
ORIGINAL = (
    "<IfModule mpm_worker_module>\n"
    "\tStartServers           4\n"
    "\tServerLimit            4\n"
    "\tMaxClients           128\n"
    "\tMinSpareThreads        8\n"
    "\tMaxSpareThreads       16\n"
    "\tThreadsPerChild       32\n"
    "\tMaxRequestsPerChild  500\n"
    "\n"
    "\n"
    "<IfModule mod_fcgid.c>\n"
    "\tAddHandler fcgid-script .fcgi .php\n"
    "\tFCGIWrapper /var/www/php-fcgi-starter .php\n"
    "\n"
    "\tIdleTimeout\t\t3600\n"
    "\tBusyTimeout\t\t 300\n"
    "\tProcessLifeTime\t\t7200\n"
    "\tIPCConnectTimeout\t  10\n"
    "\tIPCCommTimeout\t\t 360\n"
    "\tMaxProcessCount\t\t  15\n"
    "\tMaxRequestsPerProcess\t  -1\n"
    "\tPHP_Fix_Pathinfo_Enable    1\n"
)

EXPECTED = {
    "MaxClients": "MaxRequestWorkers",
    "MaxRequestsPerChild": "MaxConnectionsPerChild",
    "FCGIWrapper": "FcgidWrapper",
    "IdleTimeout": "FcgidIdleTimeout",
    "BusyTimeout": "FcgidBusyTimeout",
    "ProcessLifeTime": "FcgidProcessLifeTime",
    "IPCConnectTimeout": "FcgidConnectTimeout",
    "IPCCommTimeout": "FcgidIOTimeout",
    "MaxProcessCount": "FcgidMaxProcesses",
    "MaxRequestsPerProcess": "FcgidMaxRequestsPerProcess",
    "PHP_Fix_Pathinfo_Enable": "FcgidFixPathinfo",
}


def indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def directives(text: str) -> list[tuple[str, str]]:
    """(name, value) of each directive line, ignoring whitespace."""
    pairs = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts and not parts[0].startswith(("#", "<")):
            pairs.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return pairs


def test_every_old_name_of_the_original_post_gets_its_current_name():
    """The post's eleven old names become today's; the names that were not renamed stay."""
    result = rewrite(ORIGINAL)

    names = [name for name, _ in directives(result.text)]
    assert not set(EXPECTED) & set(names)
    assert set(EXPECTED.values()) <= set(names)
    assert {"StartServers", "ServerLimit", "ThreadsPerChild", "AddHandler"} <= set(names)
    assert sorted(n.message for n in result.renamed) == sorted(
        f"{old} -> {new}" for old, new in EXPECTED.items()
    )


def test_values_survive_the_rewrite_in_order():
    """Each directive keeps its value, and the lines stay in their order."""
    before = directives(ORIGINAL)

    after = directives(rewrite(ORIGINAL).text)

    assert [value for _, value in after] == [value for _, value in before]
    assert [EXPECTED.get(name, name) for name, _ in before] == [name for name, _ in after]


def test_indentation_blank_lines_and_section_tags_are_kept():
    """Only the names change: tabs, blank lines and the <IfModule> lines are as they were."""
    old, new = ORIGINAL.splitlines(keepends=True), rewrite(ORIGINAL).text.splitlines(keepends=True)

    assert len(new) == len(old)
    for before, after in zip(old, new, strict=True):
        assert indent(after) == indent(before)
        if not before.strip() or before.startswith("<"):
            assert after == before
    assert new[15] == "\tBusyTimeout\t\t 300\n".replace("BusyTimeout", "FcgidBusyTimeout")


def test_a_value_aligned_with_spaces_keeps_its_column():
    """MaxRequestWorkers 128 lines up where MaxClients 128 did; a longer name still gets a space."""
    result = rewrite(ORIGINAL).text.splitlines()

    assert result[3] == "\tMaxRequestWorkers    128"
    assert result[3].index("128") == ORIGINAL.splitlines()[3].index("128")
    assert result[7] == "\tMaxConnectionsPerChild 500"
    assert result[21] == "\tFcgidFixPathinfo           1"


def test_comments_are_never_rewritten():
    """A comment that mentions an old name, even as its first word, stays as it is."""
    comments = "# MaxClients was the old name\n\t#IdleTimeout 3600\n"

    result = rewrite(comments + "IdleTimeout 60 \n")

    assert result.text == comments + "FcgidIdleTimeout 60 \n"


def test_current_names_are_left_alone_so_a_second_rewrite_changes_nothing():
    """Rewriting the rewritten configuration gives the same text and no renames."""
    once = rewrite(ORIGINAL).text

    twice = rewrite(once)

    assert twice.text == once
    assert twice.renamed == []


def test_names_are_matched_without_regard_to_case():
    """Apache reads directive names in any case; so does the rewrite."""
    result = rewrite("fcgiwrapper /w .php\nMAXCLIENTS 10\n")

    assert result.text == "FcgidWrapper /w .php\nMaxRequestWorkers 10\n"


def test_an_unknown_name_is_reported_and_left_as_it_is():
    """A name the tool does not know is a warning with its line number, not a failure."""
    text = "<IfModule mod_fcgid.c>\n\tFcgidMaxProcesses 15\n\tFcgidSpawnFactor 3\n</IfModule>\n"

    result = rewrite(text)

    assert result.text == text
    assert [(n.line, n.message) for n in result.unknown] == [
        (3, "FcgidSpawnFactor is not a directive this tool knows")
    ]


def test_access_control_of_apache_2_2_is_named_but_not_rewritten():
    """Order/Allow/Deny have no one-to-one rename; the note points at Require."""
    result = rewrite("Order allow,deny\nAllow from all\n")

    assert result.text == "Order allow,deny\nAllow from all\n"
    assert [n.kind for n in result.notes] == ["replaced", "replaced"]
    assert "Require" in result.notes[0].message


def test_minus_one_request_limit_is_kept_and_explained():
    """-1 stays -1, with a note that mod_fcgid reads it as no limit."""
    result = rewrite("MaxRequestsPerProcess -1\n")

    assert result.text == "FcgidMaxRequestsPerProcess -1\n"
    assert any("no limit" in n.message for n in result.notes if n.kind == "hint")


def test_a_continuation_line_is_not_read_as_a_directive():
    """The line after a trailing backslash belongs to the directive before it."""
    text = "SetEnvIf Request_URI \\\n    IdleTimeout nolog\n"

    result = rewrite(text)

    assert result.text == text
    assert result.notes == []


def test_windows_line_endings_are_kept():
    """A file written on Windows keeps its \\r\\n endings."""
    result = rewrite("IdleTimeout 3600\r\nBusyTimeout 300\r\n")

    assert result.text == "FcgidIdleTimeout 3600\r\nFcgidBusyTimeout 300\r\n"


def test_the_rename_table_maps_old_names_to_distinct_current_names():
    """No two old names share a new one, and no new name is itself an old one."""
    assert len(set(RENAMES.values())) == len(RENAMES)
    assert not set(RENAMES.values()) & set(RENAMES)


def test_command_prints_the_rewritten_file_and_warns_about_unknown_names(tmp_path, capsys, caplog):
    """``python -m proven.fcgid FILE`` prints the result; the file itself is untouched."""
    conf = tmp_path / "apache2.conf"
    conf.write_text(ORIGINAL + "export PHPRC\n")

    with caplog.at_level(logging.INFO, logger="proven"):
        status = main([str(conf)])

    assert status == 0
    assert capsys.readouterr().out == rewrite(ORIGINAL).text + "export PHPRC\n"
    assert conf.read_text() == ORIGINAL + "export PHPRC\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{conf}:23: export is not a directive this tool knows"]


def test_command_in_place_rewrites_the_file_and_keeps_its_mode(tmp_path, capsys):
    """``--in-place`` writes the result into the file, with the file's permissions."""
    conf = tmp_path / "fcgid.conf"
    conf.write_text(ORIGINAL)
    conf.chmod(0o640)

    status = main([str(conf), "--in-place"])

    assert status == 0
    assert conf.read_text() == rewrite(ORIGINAL).text
    assert conf.stat().st_mode & 0o777 == 0o640
    assert capsys.readouterr().out == ""


def test_command_says_which_file_it_cannot_read(tmp_path, caplog):
    """A missing file is an error that names it, with exit status 1."""
    status = main([str(tmp_path / "missing.conf")])

    assert status == 1
    assert "missing.conf" in caplog.text


def test_in_place_refuses_standard_input(caplog):
    """There is no file to write back to when the configuration came on standard input."""
    status = main(["-", "--in-place"])

    assert status == 2
    assert "--in-place needs a file" in caplog.text


def test_module_runs_as_a_script_reading_standard_input():
    """``python -m proven.fcgid -`` reads the configuration from standard input."""
    proc = subprocess.run(
        [sys.executable, "-m", "proven.fcgid", "-"],
        input="MaxProcessCount 15\n",
        capture_output=True,
        text=True,
        check=True,
    )

    assert proc.stdout == "FcgidMaxProcesses 15\n"
    assert re.search(r"<stdin>:1: MaxProcessCount -> FcgidMaxProcesses", proc.stderr)
