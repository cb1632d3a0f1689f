"""Tests of the ``sk-margin`` command line (argument parsing only)."""

import pytest

from sk_margin.__main__ import main


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_demo_help_lists_options(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["demo", "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "--n-centers" in out
    assert "--random-state" in out


@pytest.mark.parametrize(
    "argv",
    [["no-such-command"], [], ["demo", "--n-centers", "many"]],
    ids=["unknown-subcommand", "no-subcommand", "bad-int"],
)
def test_bad_arguments_exit_two(argv, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert "usage: sk-margin" in capsys.readouterr().err
