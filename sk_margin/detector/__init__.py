"""Detection of atypical test inputs: margin p-values and representation models.

:class:`MarginPValueDetector` scores an input by the p-value of its margin
under per-class Gaussian mixtures of clean margins (Kesidis, Miller & Xiang,
Section V), optionally combined with class-conditional null models of the
classifier's representations; :func:`mixture_pvalue` and
:func:`fit_mixture_bic` are the one-dimensional mixtures it is built on.
"""

from sk_margin.detector._detector import MarginPValueDetector
from sk_margin.detector._mixture import fit_mixture_bic, mixture_pvalue

__all__ = ["MarginPValueDetector", "fit_mixture_bic", "mixture_pvalue"]
