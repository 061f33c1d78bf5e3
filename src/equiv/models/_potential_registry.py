r"""Interatomic potentials by name, and the protocol they follow.

The training workflow (``equiv train potential``), :func:`equiv.train.load_potential`, ``equiv
evaluate``, ``equiv md`` and :class:`equiv.calculators.EquivCalculator` accept any model class that
follows this protocol and is registered here.

The potential protocol
----------------------
A potential is a :class:`torch.nn.Module` with

**constructor** ``cls(*, species, cutoff, atomic_energies, avg_num_neighbors, scale, shift, **kwargs)``
    ``species`` — sorted list of atomic numbers it knows; ``cutoff`` — radius in Å;
    ``atomic_energies`` — :math:`E_0(Z)` in eV, one per species (same order); ``avg_num_neighbors``,
    ``scale``, ``shift`` — data statistics the workflow computes on the training set (mean number of
    neighbours within the cut-off; RMS of force components in eV/Å; mean per-atom energy after
    subtracting :math:`E_0`, in eV); ``**kwargs`` — the model's own hyper-parameters (``model_kwargs``
    in the training config). A model may ignore statistics it does not use.

**attributes**
    ``species`` (list of int), ``cutoff`` (float), ``hparams`` (dict: the constructor's keyword
    arguments, JSON-serialisable, so ``cls(**model.hparams)`` rebuilds the architecture), and the
    per-species :math:`E_0` in its state dict.

**forward** ``model(batch) -> dict``
    ``batch`` is an :class:`equiv.data.Batch`; the model must compute edge vectors as
    ``batch.positions[batch.edge_index[1]] - batch.positions[batch.edge_index[0]] + batch.shifts``
    (never from ``unit_shifts`` directly), so that forces and stress follow by autograd. It returns at
    least ``"energy"``, shape ``(n_graphs,)``, in eV, and may return ``"node_energy"`` ``(n_atoms,)``.
    An element outside ``species`` raises ``ValueError``.

Forces :math:`\mathbf F = -\partial E/\partial \mathbf r` and stress are *not* the model's job:
:func:`equiv.train.forces.predict_properties` makes positions require grad, applies a symmetric strain
for the stress, calls the model and differentiates.

Registering a model
-------------------
>>> import torch
>>> @register_potential("my-model")  # doctest: +SKIP
... class MyModel(torch.nn.Module): ...
>>> get_potential_class("toy").__name__
'ToyPotential'

Built-in names are imported lazily, and ``"package.module:ClassName"`` loads any importable class.
"""

from __future__ import annotations

import importlib

__all__ = ["register_potential", "get_potential_class", "available_potentials", "potential_name", "check_species",
           "species_lookup", "species_index", "check_potential_args"]

_REGISTRY: dict[str, type] = {}
#: Built-in potentials, imported on first use: name -> "module:Class".
_BUILTIN: dict[str, str] = {
    "toy": "equiv.models._toy_potential:ToyPotential",
}


def register_potential(name: str):
    """Class decorator registering a potential under ``name``.

    Parameters
    ----------
    name : str
        Registry key, used in training configs (``model: <name>``) and saved-model files.

    Examples
    --------
    >>> import torch
    >>> @register_potential("doc-example-potential")
    ... class DocExamplePotential(torch.nn.Module):
    ...     pass
    >>> get_potential_class("doc-example-potential") is DocExamplePotential
    True
    >>> "doc-example-potential" in available_potentials()
    True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def deco(cls):
        prev = _REGISTRY.get(name)
        if prev is not None and prev is not cls and prev.__qualname__ != cls.__qualname__:
            raise ValueError(f"name: potential {name!r} is already registered to {prev.__module__}.{prev.__qualname__}")
        _REGISTRY[name] = cls
        cls._registry_name = name
        return cls

    return deco


def check_species(species) -> list[int]:
    """Validate a potential's ``species`` argument (the protocol above): sorted, unique atomic numbers.

    >>> check_species([1, 6, 8])
    [1, 6, 8]
    """
    try:
        out = [int(z) for z in species]
    except TypeError:
        raise TypeError(f"species must be a sequence of atomic numbers, got {species!r}") from None
    if not out or sorted(set(out)) != out or out[0] < 1 or out[-1] > 118:
        raise ValueError(f"species must be sorted, unique atomic numbers in 1..118, got {species!r}")
    return out


def _import(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_potential_class(name: str) -> type:
    """The class registered as ``name`` (or ``"module:Class"``).

    Raises
    ------
    ValueError
        Unknown name; the message lists the available ones.

    Examples
    --------
    >>> get_potential_class("toy").__name__
    'ToyPotential'
    >>> get_potential_class("equiv.models:NequIP").__name__
    'NequIP'
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BUILTIN:
        cls = _import(_BUILTIN[name])
        _REGISTRY.setdefault(name, cls)
        return cls
    if ":" in name:
        try:
            return _import(name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"model: cannot import {name!r} ({exc})") from None
    raise ValueError(f"model: unknown potential {name!r}; available: {available_potentials()} "
                     f"(or 'package.module:ClassName')")


def available_potentials() -> list[str]:
    """Names of the registered and built-in potentials.

    Examples
    --------
    >>> names = available_potentials()
    >>> "toy" in names, names == sorted(names)
    (True, True)
    """
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def potential_name(model) -> str:
    """The registry name of a model instance (``"module:Class"`` for unregistered classes).

    Examples
    --------
    >>> import torch
    >>> from equiv.models import ToyPotential
    >>> potential_name(ToyPotential(species=[1, 8], cutoff=3.0, channels=4, hidden=8))
    'toy'
    >>> potential_name(torch.nn.Linear(2, 2))
    'torch.nn.modules.linear:Linear'
    """
    cls = type(model)
    for name, c in _REGISTRY.items():
        if c is cls:
            return name
    for name, spec in _BUILTIN.items():
        if spec == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return f"{cls.__module__}:{cls.__qualname__}"


def species_lookup(species) -> "torch.Tensor":
    """``(119,)`` int64 table: atomic number -> index in ``species`` (-1 for unknown elements)."""
    import torch

    lookup = torch.full((119,), -1, dtype=torch.long)
    lookup[torch.tensor(list(species))] = torch.arange(len(species))
    return lookup


def species_index(lookup, atomic_numbers, species) -> "torch.Tensor":
    """Map atomic numbers to ``0..len(species)-1`` with a `species_lookup` table; elements outside
    ``species`` (or outside 1..118) raise ``ValueError`` naming them."""
    if atomic_numbers.numel() and (atomic_numbers.min() < 1 or atomic_numbers.max() > 118):
        raise ValueError(f"atomic_numbers must be in 1..118, got range "
                         f"{int(atomic_numbers.min())}..{int(atomic_numbers.max())}")
    idx = lookup[atomic_numbers]
    if (idx < 0).any():
        bad = sorted(set(atomic_numbers[idx < 0].tolist()))
        raise ValueError(f"atomic_numbers: unknown element(s) {bad}; this model knows species {list(species)}")
    return idx


def check_potential_args(species, cutoff, atomic_energies) -> tuple[list[int], float, list[float]]:
    """Validate the protocol's common constructor arguments: ``(species, cutoff, atomic_energies)``
    with ``atomic_energies`` defaulting to zeros (one per species)."""
    species = check_species(species)
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not cutoff > 0:
        raise ValueError(f"cutoff must be a positive number in Å, got {cutoff!r}")
    atomic_energies = [0.0] * len(species) if atomic_energies is None else [float(e) for e in atomic_energies]
    if len(atomic_energies) != len(species):
        raise ValueError(f"atomic_energies must have one value per species ({len(species)}), "
                         f"got {len(atomic_energies)}")
    return species, float(cutoff), atomic_energies
