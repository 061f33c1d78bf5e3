"""The runnable examples in the docstrings of the symmetry-diagnostics modules."""

import doctest
import importlib

import pytest

MODULES = [
    "equiv.symmetry._projector",
    "equiv.symmetry._soft",
    "equiv.symmetry._rep_mlp",
    "equiv.symmetry._orbit",
    "equiv.symmetry._plots",
    "equiv.models.digits",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
