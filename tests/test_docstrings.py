"""numpydoc validation of every public docstring."""

import importlib
import inspect

import pytest
from numpydoc.validate import validate

MODULES = [
    "sk_margin",
    "sk_margin.margins",
    "sk_margin.certify",
    "sk_margin.attacks",
    "sk_margin.attack_library",
    "sk_margin.detector",
    "sk_margin.metrics",
    "sk_margin.plotting",
    "sk_margin.margin_histogram",
    "sk_margin.robustness",
    "sk_margin.box_perturbation",
    "sk_margin.callbacks",
    "sk_margin.gaussian",
    "sk_margin.gaussian_prop21",
    "sk_margin.input_gradients",
    "sk_margin.layer_bounds",
    "sk_margin.lipschitz",
    "sk_margin.local",
    "sk_margin.loss_base",
    "sk_margin.losses",
    "sk_margin.lipschitz_margin_losses",
    "sk_margin.kesidis_losses",
    "sk_margin.modules",
    "sk_margin.net",
    "sk_margin.network_certify",
    "sk_margin.kernel",
    "sk_margin.power_iteration",
]
# Checks enforced: every parameter documented and no unknown one, a summary
# line, return values described, no missing docstring.
CHECKS = {"GL08", "PR01", "PR02", "PR06", "PR07", "PR08", "RT03", "SS01", "SS03"}


def _public_names():
    names = set()
    for mod_name in MODULES:
        mod = importlib.import_module(mod_name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if not callable(obj):
                continue
            qual = f"{obj.__module__}.{obj.__qualname__}"
            names.add(qual)
            if inspect.isclass(obj):
                for meth, _ in inspect.getmembers(obj, inspect.isfunction):
                    if not meth.startswith("_") and meth in obj.__dict__:
                        names.add(f"{qual}.{meth}")
    return sorted(names)


@pytest.mark.parametrize("name", _public_names())
def test_public_docstring_is_valid(name):
    errors = [
        f"{code}: {msg}" for code, msg in validate(name)["errors"] if code in CHECKS
    ]
    assert not errors, "\n".join(errors)
