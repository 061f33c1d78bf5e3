"""Saved interatomic potentials: one file, loaded with one call.

A saved potential is a checkpoint (:func:`equiv.train.checkpoint.save_checkpoint`, atomic write) with

============== =====================================================================
``format``      ``"equiv-potential"``, ``format_version`` ``1``
``model``       registry name (:func:`equiv.models.get_potential_class`)
``class``       ``"module:Class"`` of the model, imported when the registry name is unknown to the
                loading process (a user's model registered in a module not imported there)
``hparams``     constructor keyword arguments (species, cutoff, E0, statistics, sizes)
``state_dict``  weights and buffers
``species``     atomic numbers, ``cutoff`` in Å, ``dtype`` (``"float64"`` / ``"float32"``)
``units``       ``{"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}``
``metadata``    free-form (training config, data, validation metrics)
``versions``    ``{"equiv": ..., "torch": ...}`` that wrote the file
============== =====================================================================

>>> import os, tempfile
>>> from equiv.models import ToyPotential
>>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
>>> save_potential(ToyPotential(species=[1, 8], cutoff=4.0), path)
>>> load_potential(path).species
[1, 8]
"""

from __future__ import annotations

import os

import torch

from equiv.models import get_potential_class, potential_name
from equiv.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["save_potential", "load_potential", "UNITS", "FORMAT"]

FORMAT = "equiv-potential"
FORMAT_VERSION = 1
UNITS = {"length": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}


def _equiv_version() -> str:
    from equiv import __version__

    return __version__


def save_potential(model: torch.nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model`` (any registered potential) with its hyper-parameters, species and units.

    Parameters
    ----------
    model : torch.nn.Module
        Follows the potential protocol (``species``, ``cutoff``, ``hparams`` attributes).
    path : str or os.PathLike
    metadata : dict, optional
        Extra information stored alongside (must be ``torch.save``-able plain data).

    Examples
    --------
    >>> import os, tempfile
    >>> from equiv.models import ToyPotential
    >>> _ = torch.manual_seed(0)
    >>> model = ToyPotential(species=[1, 8], cutoff=3.5, channels=4, hidden=8).double()
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "water.pt")
    >>> save_potential(model, path, metadata={"dataset": "toy"})
    >>> state = load_checkpoint(path)
    >>> state["format"], state["model"], state["species"], state["cutoff"], state["dtype"]
    ('equiv-potential', 'toy', [1, 8], 3.5, 'float64')
    >>> state["units"]["energy"], state["metadata"]
    ('eV', {'dataset': 'toy'})
    >>> tmp.cleanup()
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    for attr in ("species", "cutoff", "hparams"):
        if not hasattr(model, attr):
            raise TypeError(f"model must follow the potential protocol; {type(model).__name__} has no {attr!r}")
    params = list(model.parameters()) or list(model.buffers())
    dtype = params[0].dtype if params else torch.get_default_dtype()
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": potential_name(model),
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "hparams": dict(model.hparams),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "species": [int(z) for z in model.species],
        "cutoff": float(model.cutoff),
        "dtype": str(dtype).replace("torch.", ""),
        "units": dict(UNITS),
        "metadata": dict(metadata or {}),
        "versions": {"equiv": _equiv_version(), "torch": str(torch.__version__)},
    }
    save_checkpoint(path, state)


def load_potential(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                   return_metadata: bool = False):
    """Load a potential written by :func:`save_potential`, in evaluation mode.

    Parameters
    ----------
    path : str or os.PathLike
    device : str or torch.device
    dtype : torch.dtype, optional
        Cast to this dtype (default: the dtype it was saved in).
    return_metadata : bool
        Also return the file's ``metadata`` dict.

    Returns
    -------
    torch.nn.Module (and dict)

    Examples
    --------
    >>> import os, tempfile
    >>> from ase.build import molecule
    >>> from equiv.data import AtomicData, collate
    >>> from equiv.models import ToyPotential
    >>> from equiv.train.forces import predict_properties
    >>> _ = torch.manual_seed(0)
    >>> model = ToyPotential(species=[1, 8], cutoff=3.5, channels=4, hidden=8).double()
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "water.pt")
    >>> save_potential(model, path, metadata={"note": "demo"})
    >>> loaded, meta = load_potential(path, return_metadata=True)
    >>> type(loaded).__name__, loaded.training, meta
    ('ToyPotential', False, {'note': 'demo'})
    >>> batch = collate([AtomicData.from_ase(molecule("H2O")).with_graph(loaded.cutoff)])
    >>> e_saved = predict_properties(model, batch)["energy"]
    >>> bool(torch.allclose(predict_properties(loaded, batch)["energy"], e_saved))
    True
    >>> next(load_potential(path, dtype=torch.float32).parameters()).dtype
    torch.float32
    >>> tmp.cleanup()
    """
    state = load_checkpoint(path, map_location="cpu")
    if state.get("format") != FORMAT:
        raise ValueError(f"path: {str(path)!r} is not a saved equiv potential (format={state.get('format')!r}); "
                         "training checkpoints hold the model under 'model_state'; use the exported model.pt")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"path: {str(path)!r} has format_version {state['format_version']}, newer than this "
                         f"equiv understands ({FORMAT_VERSION})")
    try:
        cls = get_potential_class(state["model"])
    except ValueError:  # a name registered by a user module not imported in this process: import its class
        if ":" in state["model"] or "class" not in state:
            raise
        cls = get_potential_class(state["class"])
    saved_dtype = getattr(torch, state.get("dtype", "float64"))
    model = cls(**state["hparams"]).to(saved_dtype)
    model.load_state_dict(state["state_dict"])
    model = model.to(device=device, dtype=dtype or saved_dtype).eval()
    return (model, state.get("metadata", {})) if return_metadata else model
