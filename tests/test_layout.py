"""The package layout: one public surface per subpackage, torch only in nets/.

- ``import sk_margin`` loads neither torch nor skorch, matplotlib or ART;
- no module imports a private module or name of another subpackage: what
  two families share is public, or lives in a top-level private module made
  for sharing (``sk_margin._pipeline``, ``sk_margin._threads``,
  ``sk_margin._validation``);
- every name a public module lists in ``__all__`` exists.
"""

import ast
import importlib
import inspect
import pathlib
import subprocess
import sys

import pytest

import sk_margin

PACKAGE = pathlib.Path(sk_margin.__file__).parent
SUBPACKAGES = {"kernel", "nets", "attacks", "metrics", "plot", "reproduce", "detector"}
SHARED = {"sk_margin._pipeline", "sk_margin._threads", "sk_margin._validation"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _family(module):
    """The subpackage a module belongs to, or the module itself at the top."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    return module


def _imports(path, module):
    """``(imported module, names)`` of every sk_margin import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("sk_margin"):
                yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sk_margin"):
                    yield node.lineno, alias.name, []


def _private(dotted):
    return any(part.startswith("_") for part in dotted.split(".")[1:])


def _offences(modules):
    offences = []
    for module, path in modules:
        for line, imported, names in _imports(path, module):
            if _family(imported) == _family(module):
                continue  # private helpers are shared inside a subpackage
            where = f"{module}:{line}"
            if _private(imported) and imported not in SHARED:
                offences.append(f"{where} imports the private module {imported}")
            private_names = [n for n in names if n.startswith("_")]
            if private_names:
                offences.append(f"{where} imports {private_names} from {imported}")
    return offences


def test_no_module_imports_a_private_name_of_another_subpackage():
    offences = _offences(_modules())
    assert not offences, "\n".join(offences)


def test_the_check_finds_private_imports_across_subpackages(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from sk_margin.attacks._box import box_constrained_attack\n"
        "from sk_margin.attacks import _hidden\n"
        "import sk_margin.kernel._certify\n"
        "from sk_margin.metrics._certified import certified_accuracy\n"  # own
        "from sk_margin._validation import check_norm\n"  # shared on purpose
    )
    found = _offences([("sk_margin.metrics._bad", bad)])
    assert found == [
        "sk_margin.metrics._bad:1 imports the private module sk_margin.attacks._box",
        "sk_margin.metrics._bad:2 imports ['_hidden'] from sk_margin.attacks",
        "sk_margin.metrics._bad:3 imports the private module sk_margin.kernel._certify",
    ]


def test_import_sk_margin_loads_no_torch():
    code = (
        "import sys, sk_margin\n"
        "import sk_margin.kernel, sk_margin.attacks, sk_margin.metrics\n"
        "import sk_margin.plot, sk_margin.detector, sk_margin.certify\n"
        "heavy = ('torch', 'skorch', 'matplotlib', 'art')\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_torch_backed_names_load_on_first_use():
    code = (
        "import sys, sk_margin\n"
        "sk_margin.MarginNetClassifier\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "module",
    sorted(name for name, _ in _modules() if not _private(name)),
)
def test_every_public_name_exists(module):
    mod = importlib.import_module(module)
    for name in getattr(mod, "__all__", []):
        assert getattr(mod, name) is not None, f"{module}.{name}"


def test_every_public_name_is_in_the_api_reference():
    api = (PACKAGE.parent / "docs" / "api.rst").read_text()
    listed = {line.strip() for line in api.splitlines() if line.startswith("   ")}
    listed |= set(api.replace("`", " ").replace("~", " ").replace(".", " ").split())
    missing = []
    for module, _ in _modules():
        if _private(module) or module == "sk_margin.__main__":
            continue
        mod = importlib.import_module(module)
        missing += [
            f"{module}.{name}"
            for name in getattr(mod, "__all__", [])
            if name not in listed and not inspect.ismodule(getattr(mod, name))
        ]
    assert not missing, f"not in docs/api.rst: {missing}"
