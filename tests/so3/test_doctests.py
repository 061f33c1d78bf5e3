"""The ``>>>`` examples in equiv.so3 docstrings run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import equiv.so3

MODULES = [m.name for m in pkgutil.iter_modules(equiv.so3.__path__, "equiv.so3.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
