"""numpydoc validation of every public docstring.

The public API is what the public modules (no part of the dotted name starts
with an underscore) list in ``__all__``; the modules are discovered, so a new
subpackage or name is checked without being listed here.
"""

import importlib
import inspect
import pkgutil

import pytest
from numpydoc.validate import validate

import sk_margin

# Checks enforced: every parameter documented and no unknown one, a summary
# line, return values described, no missing docstring.
CHECKS = {"GL08", "PR01", "PR02", "PR06", "PR07", "PR08", "RT03", "SS01", "SS03"}


def public_modules():
    """Names of the public modules of sk_margin, the package itself included."""
    names = ["sk_margin"]
    for info in pkgutil.walk_packages(sk_margin.__path__, "sk_margin."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def _public_names():
    names = set()
    for mod_name in public_modules():
        mod = importlib.import_module(mod_name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            qual = f"{obj.__module__}.{obj.__qualname__}"
            names.add(qual)
            if inspect.isclass(obj):
                for meth, _ in inspect.getmembers(obj, inspect.isfunction):
                    if not meth.startswith("_") and meth in obj.__dict__:
                        names.add(f"{qual}.{meth}")
    return sorted(names)


def test_every_subpackage_is_discovered():
    found = set(public_modules())
    expected = {"sk_margin.kernel", "sk_margin.nets", "sk_margin.nets.losses"}
    expected |= {"sk_margin.attacks", "sk_margin.metrics", "sk_margin.plot"}
    assert expected <= found
    assert not any("._" in name for name in found)


@pytest.mark.parametrize("name", _public_names())
def test_public_docstring_is_valid(name):
    errors = [
        f"{code}: {msg}" for code, msg in validate(name)["errors"] if code in CHECKS
    ]
    assert not errors, "\n".join(errors)
