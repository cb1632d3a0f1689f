"""Tests of the ``sk-margin`` command line."""

import pytest

from sk_margin.__main__ import main, run_demo


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


@pytest.mark.slow
def test_demo_runs_end_to_end(capsys):
    # Small settings; the tables are checked for what they promise.
    results = run_demo(n_centers=100, max_epochs=5)
    out = capsys.readouterr().out
    assert set(results) == {"kernel", "net", "detector"}
    assert list(results["kernel"].index) == ["rkhs", "cross_lipschitz"]
    assert list(results["net"].index) == ["cross_entropy", "lc_lmt"]
    for table in (results["kernel"], results["net"]):
        # A certified radius never exceeds the distance to an adversarial point.
        assert (table["mean cert. l2 radius"] < table["mean adv. l2 dist."]).all()
        assert table.to_string(float_format=lambda v: f"{v:.4g}") in out
    net = results["net"]
    assert (net["cert. acc. @0.1 (%)"] >= net["cert. acc. @0.3 (%)"]).all()
    assert results["detector"]["ROC AUC"].iloc[0] > 0.9
