"""``backover --help`` and each command's help read as plain text, not reStructuredText."""

from __future__ import annotations

import re

import pytest

from backover import cli

MARKUP = re.compile(r"``|:(?:func|class|mod|meth|attr|param|data):|\.\. \w+::")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [None, *cli.command_modules()])
def test_help_has_no_rst_markup(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([command] if command else [], capsys)
    assert text.startswith("usage: backover")
    assert not MARKUP.search(text), MARKUP.search(text)


def test_top_level_help_says_what_backover_does_and_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = " ".join(_help([], capsys).split())
    assert "move a live application back from Amazon DocumentDB to MongoDB" in text
    assert "Exit status: 0 done, 1 the job failed, 2 bad usage or configuration" in text
