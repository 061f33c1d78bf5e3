import pytest
import torch

from equiv.train.ema import ExponentialMovingAverage


def test_average_follows_formula():
    lin = torch.nn.Linear(2, 1)
    ema = ExponentialMovingAverage(lin, decay=0.9, use_warmup=True)
    ref = [p.detach().clone() for p in lin.parameters()]
    for step in range(5):
        with torch.no_grad():
            for p in lin.parameters():
                p.add_(1.0)
        d = min(0.9, (1 + step) / (10 + step))
        ref = [d * r + (1 - d) * p.detach() for r, p in zip(ref, lin.parameters())]
        ema.update()
    for s, r in zip(ema.shadow, ref):
        torch.testing.assert_close(s, r)
    current = [p.detach().clone() for p in lin.parameters()]
    with ema.average_parameters():
        for p, r in zip(lin.parameters(), ref):
            torch.testing.assert_close(p.detach(), r)
    for p, c in zip(lin.parameters(), current):  # restored on exit
        assert torch.equal(p.detach(), c)


def test_state_dict_roundtrip_and_errors():
    lin = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(lin, decay=0.5)
    with torch.no_grad():
        lin.weight.mul_(3)
    ema.update()
    other = ExponentialMovingAverage(torch.nn.Linear(2, 2), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and other.decay == 0.5
    for a, b in zip(ema.shadow, other.shadow):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(lin, decay=1.0)
    with pytest.raises(ValueError, match="shadow"):
        ExponentialMovingAverage(torch.nn.Linear(3, 2)).load_state_dict(ema.state_dict())
