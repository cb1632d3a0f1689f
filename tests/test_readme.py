"""Every Python block of the README runs on its own, in a fresh namespace."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_on_its_own(index, capsys):
    exec(compile(BLOCKS[index], f"README.md block {index + 1}", "exec"), {})
    assert capsys.readouterr().out.strip()  # each block prints its result
