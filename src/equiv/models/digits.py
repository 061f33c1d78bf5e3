"""A small image classifier for scikit-learn's bundled 8x8 handwritten digits, and its training loop.

The digits (UCI optical recognition of handwritten digits, 1797 images, 16 grey levels; shipped inside
scikit-learn, nothing is downloaded) serve as the image case of orbit evaluation
(:func:`equiv.symmetry.orbit_evaluation`): a convolutional network is translation-equivariant by
construction but not rotation-invariant; training with random rotations (augmentation by bilinear
resampling, :meth:`equiv.groups.SO2.act` with ``kind="image"``) makes it approximately invariant.

>>> import torch
>>> model = DigitsCNN()
>>> model(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["DigitsCNN", "load_digits_tensors", "train_digits", "save_digits_checkpoint", "load_digits_checkpoint", "DigitsData"]

_FORMAT = "equiv-digits-v1"


class DigitsCNN(nn.Module):
    """Three 3x3 convolutions (SiLU) with a 2x2 max-pool, then a linear read-out of the 4x4 feature maps.

    Parameters
    ----------
    channels : int
        width of the first convolution (doubled after the pooling).
    num_classes : int

    Shapes: ``(B, 1, 8, 8) -> (B, num_classes)`` logits. The convolutions are translation-equivariant;
    nothing in the architecture relates rotated digits.

    Examples
    --------
    >>> model = DigitsCNN(channels=4)
    >>> images = torch.rand(3, 1, 8, 8)
    >>> logits = model(images)
    >>> logits.shape
    torch.Size([3, 10])
    >>> logits.argmax(-1).shape  # predicted classes
    torch.Size([3])
    >>> model(images[:, 0]).shape  # (B, 8, 8) works too
    torch.Size([3, 10])
    """

    def __init__(self, channels: int = 32, num_classes: int = 10):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels={channels!r}: expected a positive integer")
        c = channels
        self.config = {"channels": channels, "num_classes": num_classes}
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.SiLU(),
        )
        self.head = nn.Linear(2 * c * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"DigitsCNN: input of shape {tuple(x.shape)}; expected (B, 1, H, W) or (B, H, W)")
        if x.shape[-2:] != (8, 8):
            raise ValueError(f"DigitsCNN: images of size {tuple(x.shape[-2:])}; expected 8 x 8")
        return self.head(self.features(x).flatten(1))


@dataclass
class DigitsData:
    """Train/test split of the digits: images ``(N, 1, 8, 8)`` in [0, 1], labels ``(N,)``."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_digits_tensors(test_fraction: float = 0.25, seed: int = 0, dtype=torch.float32) -> DigitsData:
    """scikit-learn's ``load_digits`` as tensors, split at random (stratified by class) with ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError("the digits data ship with scikit-learn: pip install 'equiv[examples]'") from exc
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r}: expected a number in (0, 1)")
    d = load_digits()
    images = torch.as_tensor(d.images, dtype=dtype).unsqueeze(1) / 16.0
    labels = torch.as_tensor(d.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    test_idx = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test_idx.append(idx[: int(round(test_fraction * len(idx)))])
    test = torch.cat(test_idx).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[test] = False
    return DigitsData(images[mask], labels[mask], images[test], labels[test])


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each image counter-clockwise by its angle (radians), bilinear, zeros outside."""
    from equiv.groups import SO2

    G = SO2("z")
    return G.act(G.element(angles.to(images.dtype)), images, "image")


def train_digits(
    augment: str = "none",
    *,
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 5e-3,
    channels: int = 32,
    seed: int = 0,
    data: DigitsData | None = None,
    progress: bool = False,
) -> tuple[DigitsCNN, dict]:
    """Train :class:`DigitsCNN` with Adam (cosine schedule) and cross-entropy.

    Parameters
    ----------
    augment : ``"none"`` or ``"rotation"``
        ``"rotation"`` rotates every training image by a uniform random angle each time it is seen.

    Returns
    -------
    model, info
        ``info`` holds the config, the per-epoch training loss and the final test accuracy (upright
        test images).
    """
    if augment not in ("none", "rotation"):
        raise ValueError(f"augment={augment!r}: expected 'none' or 'rotation'")
    data = data or load_digits_tensors(seed=0)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitsCNN(channels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(data.train_labels)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    history = []
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc=f"digits ({augment})")
    for _ in epochs_iter:
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x, y = data.train_images[idx], data.train_labels[idx]
            if augment == "rotation":
                x = rotate_images(x, torch.rand(len(idx), generator=gen) * (2 * math.pi))
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append(total / n)
    model.eval()
    with torch.no_grad():
        acc = float((model(data.test_images).argmax(-1) == data.test_labels).float().mean())
    info = {
        "augment": augment,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_loss": history,
        "test_accuracy": acc,
    }
    return model, info


def save_digits_checkpoint(path: str | os.PathLike, model: DigitsCNN, info: dict | None = None) -> None:
    """Save a checkpoint that ``equiv nero`` can load (atomic write)."""
    from equiv.train.checkpoint import save_checkpoint

    save_checkpoint(path, {"format": _FORMAT, "task": "digits", "config": dict(model.config), "state_dict": model.state_dict(), "info": info or {}})


def load_digits_checkpoint(path: str | os.PathLike) -> tuple[DigitsCNN, dict]:
    """Load a checkpoint written by :func:`save_digits_checkpoint`; returns ``(model in eval mode, info)``."""
    from equiv.train.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a digits checkpoint (format {state.get('format') if isinstance(state, dict) else None!r})")
    model = DigitsCNN(**state["config"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, state.get("info", {})
