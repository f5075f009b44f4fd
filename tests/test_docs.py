"""The Examples sections of sklattn's docstrings run as written."""

import doctest
import importlib
import pkgutil

import pytest

import sklattn

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(sklattn.__path__, "sklattn.")
    if m.name != "sklattn.demo"  # a script (tested in test_demo.py)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
