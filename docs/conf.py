"""Sphinx configuration for the sk_margin documentation."""

import importlib
import os
import pkgutil
import sys
from importlib.util import find_spec

from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docstrings import prepare_docstring

# Document the working tree even when the package is not installed.
sys.path.insert(0, os.path.abspath(".."))

project = "sk_margin"
author = "sk_margin developers"
copyright = "2026, sk_margin developers"

try:
    from sk_margin import __version__ as release
except ImportError:  # the docs still build, without the API pages' content
    release = "unknown"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "alabaster"

# The examples gallery: only when sphinx-gallery is installed (the ``docs``
# extra); otherwise a stub page stands in for it so the build still works.
if find_spec("sphinx_gallery") is not None:
    extensions.append("sphinx_gallery.gen_gallery")
    sphinx_gallery_conf = {
        "examples_dirs": "../examples",
        "gallery_dirs": "auto_examples",
        "filename_pattern": "/plot_",
        "doc_module": ("sk_margin",),
        "reference_url": {"sk_margin": None},
        "download_all_examples": False,
    }
else:
    _stub = os.path.join(os.path.dirname(__file__), "auto_examples", "index.rst")
    if not os.path.exists(_stub):
        os.makedirs(os.path.dirname(_stub), exist_ok=True)
        with open(_stub, "w") as f:
            f.write(
                "Examples\n========\n\n"
                "Install the ``docs`` extra (sphinx-gallery) to build the "
                "examples gallery.\n"
            )


# The public modules, as docs/api.rst lists them. Every name is documented
# once, in the subpackage whose ``__all__`` lists it.
PUBLIC_MODULES = (
    "sk_margin.kernel",
    "sk_margin.nets",
    "sk_margin.nets.losses",
    "sk_margin.detector",
    "sk_margin.attacks",
    "sk_margin.metrics",
    "sk_margin.plot",
    "sk_margin.margins",
    "sk_margin.certify",
)


def _homes():
    """``{name: subpackage}`` for the names ``sk_margin`` re-exports."""
    try:
        import sk_margin
    except ImportError:
        return {}
    homes = {}
    for modname in PUBLIC_MODULES:
        try:
            module = importlib.import_module(modname)
        except ImportError:  # e.g. sk_margin.nets without torch
            continue
        for name in module.__all__:
            if name in sk_margin.__all__:
                homes.setdefault(name, modname)
    return homes


_HOMES = _homes()


def _link_reexports(app, env, node, contnode):
    """Resolve ``sk_margin.X`` (and ``X`` under ``currentmodule:: sk_margin``).

    The top-level names are documented in their subpackage (``sk_margin.X`` is
    ``sk_margin.kernel.X``, ...), so references written the way users import
    them would otherwise not link.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if target.startswith("sk_margin."):
        target = target[len("sk_margin.") :]
    elif node.get("py:module") != "sk_margin":
        return None
    head, dot, rest = target.partition(".")
    if head not in _HOMES:
        return None
    return env.get_domain("py").resolve_xref(
        env,
        node["refdoc"],
        app.builder,
        node["reftype"],
        f"{_HOMES[head]}.{head}{dot}{rest}",
        node,
        contnode,
    )


def _constant_doc_comments(app, what, name, obj, options, lines):
    """Re-exported constants: their ``#:`` comment, not their type's docstring.

    autodoc reads ``#:`` comments from the module it documents a constant in
    (the subpackage's ``__init__``), not from the private module that defines
    it, and falls back to ``tuple.__doc__`` or ``dict.__doc__``.
    """
    if what != "data" or not name.startswith("sk_margin."):
        return
    type_doc = prepare_docstring(type(obj).__doc__ or "")
    if [line for line in lines if line] != [line for line in type_doc if line]:
        return
    modname, attr = name.rsplit(".", 1)
    package = importlib.import_module(modname)
    candidates = [modname] + [
        f"{modname}.{info.name}"
        for info in pkgutil.iter_modules(getattr(package, "__path__", []))
    ]
    lines[:] = []
    for candidate in candidates:
        if getattr(importlib.import_module(candidate), attr, None) is not obj:
            continue
        comment = ModuleAnalyzer.for_module(candidate).find_attr_docs().get(("", attr))
        if comment:
            lines[:] = list(comment)
            return


def setup(app):
    app.connect("missing-reference", _link_reexports)
    # Before numpydoc (priority 500) reformats the docstring.
    app.connect("autodoc-process-docstring", _constant_doc_comments, priority=100)
