"""The ``>>>`` examples in equiv.tp docstrings run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import equiv.tp

MODULES = [m.name for m in pkgutil.iter_modules(equiv.tp.__path__, "equiv.tp.")]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.IGNORE_EXCEPTION_DETAIL
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=flags)
    assert result.failed == 0
