"""Checks for guide 05: the benchmark page refuses bad input and counts and times its loop."""

from __future__ import annotations

import re

import pytest

LOOP = "http://localhost/check/loop.php"


@pytest.mark.parametrize("query", ["max=abc", "max=10000000"])
def test_bad_max_answers_400(host, query):
    """A max that is not a whole number from 1 to 100,000 answers 400."""
    status = host.check_output("curl -s -o /dev/null -w '%%{http_code}' %s", f"{LOOP}?{query}")

    assert status == "400"


def test_max_1000_answers_1000_lines_and_a_time(host):
    """max=1000 answers 200 with the numbers 0 to 999, one per line, and a time of 0 s or more."""
    # The status comes right after the body's last newline, as a line of its own.
    cmd = host.run("curl -sS -w '%%{http_code}' %s", f"{LOOP}?max=1000")
    *body, status = cmd.stdout.splitlines()
    numbers = [line for line in body if re.fullmatch(r"\d+", line)]
    took = re.fullmatch(r"took (\d+\.\d+) s", body[-1])

    assert status == "200", cmd.stdout[-500:] + cmd.stderr
    assert numbers == [str(i) for i in range(1000)]
    assert took, body[-1]
    assert float(took.group(1)) >= 0
