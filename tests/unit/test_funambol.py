"""The Funambol serverURI checker: agreement, every error shape, and the in-place fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proven import funambol
from proven.funambol import main, normalise

DATA = Path(__file__).parent / "data" / "funambol"
# The fixture's serverURI element, as written; tests swap it for the shape they need.
CONFIGURED = (
    b'<void property="serverURI">\n'
    b"     <string>http://sync.example.org/funambol/ds</string>\n"
    b"    </void>"
)
CLIENT = "http://sync.example.org/funambol/ds"


def config(tmp_path: Path, fixture: str = "Funambol.xml", element: bytes | None = None) -> Path:
    """Copy a fixture to ``tmp_path/Funambol.xml``, its serverURI element replaced if given."""
    data = (DATA / fixture).read_bytes()
    if element is not None:
        assert CONFIGURED in data
        data = data.replace(CONFIGURED, element)
    path = tmp_path / "Funambol.xml"
    path.write_bytes(data)
    return path


def with_uri(tmp_path: Path, uri: str) -> Path:
    """A Funambol.xml whose serverURI is the string ``uri``."""
    element = f'<void property="serverURI">\n     <string>{uri}</string>\n    </void>'
    return config(tmp_path, element=element.encode())


def run(path: Path, client: str = CLIENT, *extra: str) -> int:
    """Run the checker's main on ``path`` and ``client``."""
    return main(["--config", str(path), "--client-url", client, *extra])


@pytest.mark.parametrize(
    "element",
    [
        b'<void property="serverURI">\n     <string></string>\n    </void>',
        b'<void property="serverURI"><string/></void>',
        b'<void property="serverURI"><null/></void>',
    ],
    ids=["empty-string", "self-closing-string", "null"],
)
def test_empty_server_uri_agrees_with_any_client_url(tmp_path, capsys, element):
    """An empty or null serverURI lets the server take the client's URI, so it agrees."""
    path = config(tmp_path, element=element)

    code = run(path, "https://elsewhere.example.net:8443/sync")

    assert code == funambol.AGREE
    assert "agree: serverURI is" in capsys.readouterr().out


def test_equal_server_uri_agrees(tmp_path, capsys):
    """A serverURI written exactly as the clients' URL agrees."""
    path = config(tmp_path)

    code = run(path, CLIENT)

    assert code == funambol.AGREE
    assert "agree: equal" in capsys.readouterr().out


@pytest.mark.parametrize(
    "configured, client",
    [
        ("HTTP://Sync.Example.ORG/funambol/ds", "http://sync.example.org/funambol/ds"),
        ("http://sync.example.org:80/funambol/ds", "http://sync.example.org/funambol/ds"),
        ("https://sync.example.org:443/funambol/ds", "https://sync.example.org/funambol/ds"),
        ("http://sync.example.org/funambol/ds/", "http://sync.example.org/funambol/ds"),
        ("http://sync.example.org", "http://sync.example.org/"),
        ("http://sync.example.org/funambol/ds#top", "http://user@sync.example.org/funambol/ds"),
    ],
    ids=[
        "case",
        "http-default-port",
        "https-default-port",
        "trailing-slash",
        "empty-path",
        "extras",
    ],
)
def test_equal_after_normalisation_agrees(tmp_path, capsys, configured, client):
    """Case of scheme and host, default ports and a trailing slash do not make URIs differ."""
    path = with_uri(tmp_path, configured)

    code = run(path, client)

    assert code == funambol.AGREE
    assert "equal after normalisation" in capsys.readouterr().out


def test_different_host_disagrees_and_explains_symptom_and_fixes(tmp_path, capsys):
    """A different host exits 1 and names both URIs, the exception and both fixes."""
    path = config(tmp_path)

    code = run(path, "http://192.168.1.10:8080/funambol/ds")

    out = capsys.readouterr().out
    assert code == funambol.DISAGREE
    assert "configured serverURI: 'http://sync.example.org/funambol/ds'" in out
    assert "clients use:          http://192.168.1.10:8080/funambol/ds" in out
    assert "host: sync.example.org vs 192.168.1.10" in out
    assert "port: 80 vs 8080" in out
    assert "NullPointerException" in out
    assert "SyncSessionHandler.processInitSyncMapMessage" in out
    assert funambol.EMPTY_ELEMENT in out
    assert "point every client at the configured URI: http://sync.example.org/funambol/ds" in out


def test_different_path_disagrees(tmp_path, capsys):
    """The same host under another path disagrees, and the report names the paths."""
    path = config(tmp_path)

    code = run(path, "http://sync.example.org/funambol/sync")

    assert code == funambol.DISAGREE
    assert "path: /funambol/ds vs /funambol/sync" in capsys.readouterr().out


def test_path_case_matters(tmp_path):
    """Paths compare case-sensitively, as servlet containers map them."""
    path = config(tmp_path)

    assert run(path, "http://sync.example.org/Funambol/ds") == funambol.DISAGREE


def test_whitespace_only_server_uri_is_not_empty(tmp_path, capsys):
    """A serverURI of only spaces disagrees: nothing says the server trims it."""
    path = with_uri(tmp_path, "   ")

    code = run(path)

    out = capsys.readouterr().out
    assert code == funambol.DISAGREE
    assert "only whitespace" in out
    assert "point every client" not in out


def test_server_uri_that_is_not_a_url_disagrees(tmp_path, capsys):
    """A configured value that is no http(s) URL cannot match and is reported as such."""
    path = with_uri(tmp_path, "sync.example.org/funambol/ds")

    code = run(path)

    assert code == funambol.DISAGREE
    assert "not an absolute http or https URL" in capsys.readouterr().out


def test_missing_file_has_its_own_exit_code(tmp_path, capsys):
    """A path that does not exist exits 3 and says so."""
    code = run(tmp_path / "Funambol.xml")

    assert code == funambol.FILE_MISSING
    assert "no such file" in capsys.readouterr().err


def test_directory_is_unreadable(tmp_path, capsys):
    """A directory given as the file exits 4."""
    code = run(tmp_path)

    assert code == funambol.FILE_UNREADABLE
    assert "is a directory" in capsys.readouterr().err


def test_permission_denied_is_unreadable(tmp_path, capsys, monkeypatch):
    """A file the user may not read exits 4 and says why."""
    path = config(tmp_path)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)

    code = run(path)

    assert code == funambol.FILE_UNREADABLE
    assert "cannot be read: Permission denied" in capsys.readouterr().err


def test_malformed_xml_reports_line_and_column(tmp_path, capsys):
    """Broken XML exits 5 and points at the line and column where parsing stopped."""
    path = config(tmp_path, "malformed.xml")

    code = run(path)

    err = capsys.readouterr().err
    assert code == funambol.MALFORMED_XML
    assert "mismatched tag at line 7, column " in err


def test_malformed_xml_error_carries_position(tmp_path):
    """The error object carries the 1-based line and column."""
    path = tmp_path / "Funambol.xml"
    path.write_bytes(b"<java>\n  <object></java>")

    with pytest.raises(funambol.MalformedXML) as caught:
        funambol.check(path, CLIENT)

    assert (caught.value.line, caught.value.column) == (2, 13)


def test_empty_file_is_malformed(tmp_path):
    """An empty file is not XML at all and exits 5."""
    path = tmp_path / "Funambol.xml"
    path.write_bytes(b"")

    assert run(path) == funambol.MALFORMED_XML


def test_xml_that_is_not_xmldecoder_has_its_own_exit_code(tmp_path, capsys):
    """Well-formed XML with another root element exits 6 and names that root."""
    path = config(tmp_path, "not-xmldecoder.xml")

    code = run(path)

    err = capsys.readouterr().err
    assert code == funambol.NOT_XMLDECODER
    assert "the root element is <Server>" in err


def test_java_root_for_another_decoder_is_rejected(tmp_path):
    """A <java> root naming another decoder class is not an XMLDecoder document."""
    path = tmp_path / "Funambol.xml"
    path.write_bytes(b'<java class="com.example.Other"><object class="x"/></java>')

    assert run(path) == funambol.NOT_XMLDECODER


def test_missing_server_uri_says_where_it_was_expected(tmp_path, capsys):
    """An engine configuration without serverURI exits 7 and shows the expected place."""
    path = config(tmp_path, "no-server-uri.xml")

    code = run(path)

    err = capsys.readouterr().err
    assert code == funambol.NO_SERVER_URI
    assert '<void property="engineConfiguration"> > <object> > <void property="serverURI">' in err
    assert funambol.EMPTY_ELEMENT in err


def test_server_uri_setting_no_value_is_reported(tmp_path, capsys):
    """A serverURI element with no value inside exits 7 and names its line."""
    path = config(tmp_path, element=b'<void property="serverURI"/>')

    code = run(path)

    assert code == funambol.NO_SERVER_URI
    assert 'line 12: <void property="serverURI"> sets no value' in capsys.readouterr().err


def test_last_server_uri_setting_wins(tmp_path):
    """When serverURI is set twice, the later setting is the one checked, as XMLDecoder does."""
    twice = CONFIGURED + b'\n    <void property="serverURI"><string></string></void>'
    path = config(tmp_path, element=twice)

    assert run(path, "http://other.example.org/funambol/ds") == funambol.AGREE


def test_fix_empties_uri_rechecks_clean_and_keeps_backup(tmp_path, capsys):
    """--fix leaves an empty serverURI that checks clean and the original in Funambol.xml.bak."""
    path = config(tmp_path)
    original = path.read_bytes()

    code = run(path, "http://192.168.1.10:8080/funambol/ds", "--fix")

    out = capsys.readouterr().out
    assert code == funambol.AGREE
    assert "fixed: emptied serverURI" in out
    assert (tmp_path / "Funambol.xml.bak").read_bytes() == original
    assert run(path, "http://192.168.1.10:8080/funambol/ds") == funambol.AGREE


def test_fix_changes_only_the_uri_bytes(tmp_path):
    """--fix removes the URI text and keeps every other byte, CRLF line ends included."""
    path = tmp_path / "Funambol.xml"
    path.write_bytes((DATA / "Funambol.xml").read_bytes().replace(b"\n", b"\r\n"))
    original = path.read_bytes()

    run(path, "http://192.168.1.10/funambol/ds", "--fix")

    uri = b"http://sync.example.org/funambol/ds"
    assert path.read_bytes() == original.replace(b"<string>" + uri, b"<string>")


def test_fix_keeps_mode_and_leaves_no_temporary_files(tmp_path):
    """The fixed file keeps its permissions, and only it and its backup are left."""
    path = config(tmp_path)
    path.chmod(0o640)

    run(path, "http://192.168.1.10/funambol/ds", "--fix")

    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Funambol.xml", "Funambol.xml.bak"]


def test_fix_through_a_symlink_edits_the_target(tmp_path):
    """--fix on a symlink rewrites the file it points to and keeps the link."""
    real = config(tmp_path)
    link = tmp_path / "link.xml"
    link.symlink_to(real)

    run(link, "http://192.168.1.10/funambol/ds", "--fix")

    assert link.is_symlink()
    assert b"<string></string>" in real.read_bytes()
    assert (tmp_path / "Funambol.xml.bak").exists()


def test_fix_on_agreeing_file_writes_nothing(tmp_path):
    """--fix changes nothing, and makes no backup, when the URIs already agree."""
    path = config(tmp_path)
    before = path.stat().st_mtime_ns

    code = run(path, CLIENT, "--fix")

    assert code == funambol.AGREE
    assert path.stat().st_mtime_ns == before
    assert not (tmp_path / "Funambol.xml.bak").exists()


def test_fix_refuses_when_server_uri_is_missing(tmp_path):
    """--fix on a file without serverURI exits 7 and writes nothing."""
    path = config(tmp_path, "no-server-uri.xml")

    code = run(path, CLIENT, "--fix")

    assert code == funambol.NO_SERVER_URI
    assert not (tmp_path / "Funambol.xml.bak").exists()


@pytest.mark.parametrize("client", ["sync.example.org/funambol/ds", "ftp://sync.example.org/"])
def test_client_url_must_be_http(tmp_path, capsys, client):
    """A client URL that is not an absolute http(s) URL is a usage error."""
    path = config(tmp_path)

    with pytest.raises(SystemExit) as stopped:
        run(path, client)

    assert stopped.value.code == funambol.USAGE
    assert "not an absolute http or https URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url, expected",
    [
        ("HTTP://Host.Example:80", "http://host.example/"),
        ("https://host.example:443/a/b/", "https://host.example/a/b"),
        ("http://host.example:8080/a?x=1#frag", "http://host.example:8080/a?x=1"),
        ("http://[FE80::1]:8080/ds", "http://[fe80::1]:8080/ds"),
        ("  http://host.example/ds  ", "http://host.example/ds"),
        ("host.example/ds", None),
        ("http://host.example:99999/ds", None),
    ],
)
def test_normalise_follows_the_documented_rule(url, expected):
    """Normalisation lowercases scheme and host, drops default ports, fragments and one slash."""
    assert normalise(url) == expected


def test_module_runs_as_a_single_file_without_the_package(tmp_path):
    """The module runs as plain ``python3 funambol.py`` with no site-packages at all."""
    script = tmp_path / "funambol.py"
    shutil.copy(funambol.__file__, script)
    path = config(tmp_path)

    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--config", str(path), "--client-url", CLIENT],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
        cwd=tmp_path,
        check=False,
    )

    assert done.returncode == funambol.AGREE, done.stderr
    assert "agree: equal" in done.stdout


def test_module_runs_with_python_dash_m(tmp_path):
    """``python -m proven.funambol`` exits with the checker's code."""
    path = config(tmp_path)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "proven.funambol",
            "--config",
            str(path),
            "--client-url",
            "http://x/",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == funambol.DISAGREE
    assert "DISAGREE" in done.stdout
