"""equiv.calculators: run equiv potentials in ASE (:class:`EquivCalculator`), and ``equiv md``."""

from equiv.calculators._ase import EquivCalculator

__all__ = ["EquivCalculator"]
