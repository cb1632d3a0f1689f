"""What every reproduction returns, and how it is run and reported."""

import dataclasses
import importlib
import time
from pathlib import Path

import numpy as np

__all__ = [
    "REPRODUCTIONS",
    "SIZES",
    "Claim",
    "Reproduction",
    "mnist_subset",
    "reproduce",
    "settings_table",
]

#: How large a run is: ``"smoke"`` (seconds, for the tests), ``"default"``
#: (a few minutes on 2 CPU cores) or ``"full"`` (larger, closer to the paper).
SIZES = ("smoke", "default", "full")

#: The reproductions by name: ``name -> (private module, one-line title)``.
REPRODUCTIONS = {
    "hein-kernel": (
        "sk_margin.reproduce._hein_kernel",
        "Hein & Andriushchenko 2017: the kernel table (Section 5)",
    ),
    "hein-net": (
        "sk_margin.reproduce._hein_net",
        "Hein & Andriushchenko 2017: one hidden layer, weight decay/dropout/CL",
    ),
    "ono-lclmt": (
        "sk_margin.reproduce._ono",
        "Ono, Takahashi & Kakizaki: LMT vs LC-LMT at eps = 1",
    ),
    "wu-yu-amr": (
        "sk_margin.reproduce._wu_yu",
        "Wu & Yu: minimum vs average margin, AMR (Fig. 2, Table 1)",
    ),
    "matyasko-chau": (
        "sk_margin.reproduce._matyasko",
        "Matyasko & Chau: gradient-margin maximisation, DeepFool robustness",
    ),
    "kesidis-margin": (
        "sk_margin.reproduce._kesidis",
        "Kesidis, Miller & Xiang: margin training, transfer, margin p-values",
    ),
}


@dataclasses.dataclass
class Claim:
    """A direction of effect the paper reports, and whether ours shows it.

    Parameters
    ----------
    text : str
        The paper's claim, e.g. ``"Cross-Lipschitz raises the adversarial
        norm over no regularisation"``.
    holds : bool
        Whether our figures show the same direction.
    detail : str
        The figures behind the verdict.
    """

    text: str
    holds: bool
    detail: str = ""

    def __str__(self):
        mark = "reproduced    " if self.holds else "NOT reproduced"
        return f"{mark}  {self.text}" + (f" ({self.detail})" if self.detail else "")


@dataclasses.dataclass
class Reproduction:
    """The result of one reproduction.

    Parameters
    ----------
    name : str
        Its name in :data:`REPRODUCTIONS`.
    title : str
        What it reproduces.
    table : pandas.DataFrame
        Our figures beside the paper's: one row per model or setting, each
        measured column ``"<metric>"`` next to ``"<metric> (paper)"`` (NaN
        where the paper gives no figure).
    settings : pandas.DataFrame
        The paper's setting beside ours (data, sizes, epochs, ...): index the
        aspect, columns ``"paper"`` and ``"ours"``.
    claims : list of Claim
        The directions of effect checked.
    size : str
        The size it ran at (see :data:`SIZES`).
    figure : matplotlib.figure.Figure or None
        Its plot.
    seconds : float
        Wall-clock time of the run.
    notes : list of str
        Differences of setting and anything else a reader must know.
    """

    name: str
    title: str
    table: object
    settings: object
    claims: list
    size: str = "default"
    figure: object = None
    seconds: float = float("nan")
    notes: list = dataclasses.field(default_factory=list)

    def __str__(self):
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_columns", None):
            table = self.table.to_string(float_format=_fmt)
            settings = self.settings.to_string()
        lines = [self.title, "=" * min(len(self.title), 79), "", table, "",
                 "Setting", "-------", settings, ""]  # fmt: skip
        if self.claims:
            lines += ["Directions of effect", "--------------------"]
            lines += [str(c) for c in self.claims] + [""]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"({self.size} size, {self.seconds:.0f} s)")
        return "\n".join(lines)

    def save(self, directory):
        """Write the table and settings (CSV), the report (text) and the plot (PNG).

        Parameters
        ----------
        directory : str or path-like
            Created if missing; files are named after the reproduction:
            ``NAME.csv`` (the table, four significant digits),
            ``NAME-settings.csv``, ``NAME.txt`` (what ``str`` prints) and
            ``NAME.png``.

        Returns
        -------
        paths : list of pathlib.Path
            The files written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [
            directory / f"{self.name}.csv",
            directory / f"{self.name}-settings.csv",
            directory / f"{self.name}.txt",
        ]
        self.table.to_csv(paths[0], float_format="%.4g")
        self.settings.to_csv(paths[1], index_label="aspect")
        paths[2].write_text(str(self) + "\n")
        if self.figure is not None:
            paths.append(directory / f"{self.name}.png")
            self.figure.savefig(paths[-1], dpi=100, bbox_inches="tight")
        return paths


def _fmt(value):
    if not np.isfinite(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def reproduce(name, *, size="default", random_state=0):
    """Run one reproduction and return its result.

    Parameters
    ----------
    name : str
        One of :data:`REPRODUCTIONS`.
    size : {"smoke", "default", "full"}, default="default"
        How large a run (see :data:`SIZES`).
    random_state : int, default=0
        Seed of every split, initialisation and attack.

    Returns
    -------
    result : Reproduction
        Its table, settings, claims and figure.
    """
    if name not in REPRODUCTIONS:
        raise ValueError(
            f"Unknown reproduction {name!r}; the reproductions are "
            f"{', '.join(map(repr, REPRODUCTIONS))}."
        )
    if size not in SIZES:
        raise ValueError(
            f"size must be one of {', '.join(map(repr, SIZES))}, got {size!r}."
        )
    module = importlib.import_module(REPRODUCTIONS[name][0])
    start = time.perf_counter()
    result = module.run(size=size, random_state=random_state)
    result.seconds = time.perf_counter() - start
    result.size = size
    return result


def mnist_subset(n_train, n_test, random_state=0):
    """A stratified subset of :func:`~sk_margin.datasets.load_mnist_5k`'s split.

    Parameters
    ----------
    n_train, n_test : int
        Sizes, at most 4,000 and 1,000 (all of the split's part).
    random_state : int, default=0
        Seed of the subsampling (the split itself is fixed).

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        Pixels in [0, 1] (float64) and labels.
    """
    from sklearn.model_selection import train_test_split

    from sk_margin.datasets import load_mnist_5k

    parts = []
    for split, n in (("train", n_train), ("test", n_test)):
        X, y = load_mnist_5k(split=split, return_X_y=True)
        if n < len(X):
            X, _, y, _ = train_test_split(
                X, y, train_size=n, stratify=y, random_state=random_state
            )
        parts.append((X, y))
    (X_train, y_train), (X_test, y_test) = parts
    return X_train, X_test, y_train, y_test


def settings_table(rows):
    """``{aspect: (paper, ours)}`` as the settings DataFrame."""
    import pandas as pd

    return pd.DataFrame.from_dict(rows, orient="index", columns=["paper", "ours"])
