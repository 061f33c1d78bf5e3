r"""Exponential moving average (EMA) of model weights.

After every optimiser step the shadow weights follow

.. math::

    \bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta,
    \qquad d = \min\Bigl(d_\text{max},\ \frac{1 + n}{10 + n}\Bigr),

with :math:`n` the number of updates so far (the warm-up keeps early averages from remembering the
random initialisation; Polyak & Juditsky 1992, as used by NequIP and MACE). Evaluation and the saved
model use :math:`\bar\theta`.

>>> import torch
>>> lin = torch.nn.Linear(1, 1, bias=False)
>>> ema = ExponentialMovingAverage(lin, decay=0.5)
>>> with torch.no_grad():
...     _ = lin.weight.fill_(1.0)
>>> ema.update()
>>> with ema.average_parameters():
...     float(lin.weight.detach()) < 1.0
True
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """Shadow copy of a module's parameters, averaged exponentially.

    Parameters
    ----------
    module : torch.nn.Module
        Its trainable parameters are tracked (buffers are not).
    decay : float
        :math:`d_\\text{max}` in [0, 1).
    use_warmup : bool
        Use :math:`\\min(d, (1+n)/(10+n))` (default ``True``).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(2, 1)
    >>> ema = ExponentialMovingAverage(model, decay=0.9)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     model(torch.ones(1, 2)).sum().backward()
    ...     opt.step()
    ...     ema.update()  # after every optimiser step
    >>> ema.num_updates, round(ema.current_decay(), 4)  # warm-up: min(0.9, (1 + 3) / (10 + 3))
    (3, 0.3077)
    >>> current = model.weight.detach().clone()
    >>> with ema.average_parameters():  # e.g. for validation
    ...     averaged = model.weight.detach().clone()
    >>> bool(torch.equal(averaged, ema.shadow[0])), bool(torch.equal(averaged, current))
    (True, False)
    >>> bool(torch.equal(model.weight, current))  # training weights are back
    True
    """

    def __init__(self, module: torch.nn.Module, decay: float = 0.99, use_warmup: bool = True):
        if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.decay, self.use_warmup = float(decay), bool(use_warmup)
        self.num_updates = 0
        self.shadow = [p.detach().clone() for p in self.params]
        self._backup: list[torch.Tensor] | None = None

    def current_decay(self) -> float:
        """The decay used by the next :meth:`update`."""
        if not self.use_warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameters into the average."""
        d = self.current_decay()
        self.num_updates += 1
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module | None = None) -> None:
        """Write the averaged weights into ``module``'s parameters (default: the tracked ones)."""
        targets = self.params if module is None else [p for p in module.parameters() if p.requires_grad]
        if len(targets) != len(self.shadow):
            raise ValueError(f"module has {len(targets)} trainable parameters, the average tracks {len(self.shadow)}")
        for s, p in zip(self.shadow, targets):
            p.copy_(s)

    @contextlib.contextmanager
    def average_parameters(self):
        """Temporarily swap the averaged weights in (restored on exit)."""
        backup = [p.detach().clone() for p in self.params]
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for b, p in zip(backup, self.params):
                    p.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "use_warmup": self.use_warmup, "num_updates": self.num_updates,
                "shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict) -> None:
        shadow = state["shadow"]
        if len(shadow) != len(self.shadow) or any(a.shape != b.shape for a, b in zip(shadow, self.shadow)):
            raise ValueError("state: shadow parameters do not match the tracked module")
        self.decay, self.use_warmup = float(state["decay"]), bool(state["use_warmup"])
        self.num_updates = int(state["num_updates"])
        with torch.no_grad():
            for s, v in zip(self.shadow, shadow):
                s.copy_(v)
