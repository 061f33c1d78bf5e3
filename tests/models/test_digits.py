"""The 8x8 digits classifier (scikit-learn's bundled data) and its rotation augmentation."""

import math

import pytest
import torch

from equiv.models.digits import (
    DigitsCNN,
    load_digits_checkpoint,
    load_digits_tensors,
    rotate_images,
    save_digits_checkpoint,
    train_digits,
)


def test_data_split_is_stratified_and_scaled():
    d = load_digits_tensors(test_fraction=0.25, seed=0)
    assert d.train_images.shape[1:] == (1, 8, 8) and len(d.train_labels) + len(d.test_labels) == 1797
    assert 0.0 <= float(d.train_images.min()) and float(d.train_images.max()) <= 1.0
    counts = torch.bincount(d.test_labels, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # a quarter of ~180 per class
    again = load_digits_tensors(test_fraction=0.25, seed=0)
    assert torch.equal(d.test_labels, again.test_labels)
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        load_digits_tensors(test_fraction=1.5)


def test_rotate_images_right_angles():
    x = torch.rand(3, 1, 8, 8)
    out = rotate_images(x, torch.tensor([0.0, math.pi / 2, math.pi]))
    assert torch.allclose(out[0], x[0], atol=1e-6)
    assert torch.allclose(out[1], torch.rot90(x[1], 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(out[2], torch.rot90(x[2], 2, dims=(-2, -1)), atol=1e-5)


def test_model_shapes_and_errors(dtype):
    m = DigitsCNN(channels=4).to(dtype)
    assert m(torch.zeros(5, 1, 8, 8, dtype=dtype)).shape == (5, 10)
    assert m(torch.zeros(5, 8, 8, dtype=dtype)).shape == (5, 10)
    with pytest.raises(ValueError, match="expected \\(B, 1, H, W\\)"):
        m(torch.zeros(5, 3, 8, 8, dtype=dtype))
    with pytest.raises(ValueError, match="channels=0"):
        DigitsCNN(channels=0)


def test_short_training_learns_and_checkpoint_roundtrip(tmp_path):
    d = load_digits_tensors(seed=0)
    model, info = train_digits("none", epochs=3, channels=8, lr=1e-2, data=d, seed=0)
    assert info["test_accuracy"] > 0.8  # chance is 0.1
    assert info["train_loss"][1] < info["train_loss"][0]
    save_digits_checkpoint(tmp_path / "d.pt", model, info)
    loaded, info2 = load_digits_checkpoint(tmp_path / "d.pt")
    assert info2["test_accuracy"] == info["test_accuracy"]
    with torch.no_grad():
        assert torch.equal(loaded(d.test_images[:4]), model(d.test_images[:4]))
    with pytest.raises(ValueError, match="augment='flip'"):
        train_digits("flip")
