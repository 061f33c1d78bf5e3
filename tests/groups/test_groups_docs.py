"""The runnable examples in equiv.groups' docstrings."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["equiv.groups", "equiv.groups._reps", "equiv.groups._base", "equiv.groups._rotations",
                                  "equiv.groups._affine", "equiv.groups._permutations"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
