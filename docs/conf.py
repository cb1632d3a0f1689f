"""Sphinx configuration for the sk_margin documentation."""

import os
import sys
from importlib.util import find_spec

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

templates_path = []
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
