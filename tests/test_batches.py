"""The device-resident input pipeline (`batches`): same batches, same training as the DataLoader path."""
import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from unirep_lite.batches import TensorBatches, as_tensors, device_batches, make_loader, reseed_loader
from unirep_lite.train import TrainConfig, fit

CPU = dict(device="cpu", progress=False)


def data(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


@pytest.mark.parametrize("shuffle,drop_last", [(True, True), (True, False), (False, False)])
def test_same_batches_as_the_dataloader_in_every_epoch(shuffle, drop_last):
    x, y = data()
    ours = TensorBatches(x, y, 16, shuffle=shuffle, seed=3, drop_last=drop_last)
    theirs = make_loader((x, y), 16, shuffle=shuffle, seed=3, drop_last=drop_last)
    assert len(ours) == len(theirs)
    for epoch in range(3):
        ours.set_epoch(epoch)
        reseed_loader(theirs, 3, epoch)
        for (xa, ya), (xb, yb) in zip(ours, theirs, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_order_is_a_function_of_seed_and_epoch_only():
    x, y = data()
    a, b = TensorBatches(x, y, 8, shuffle=True, seed=1), TensorBatches(x, y, 8, shuffle=True, seed=1)
    for _ in range(2):  # iterating does not advance anything
        list(a)
    a.set_epoch(4), b.set_epoch(4)
    assert torch.equal(a.order(), b.order())
    b.set_epoch(5)
    assert not torch.equal(a.order(), b.order())


def test_fit_on_the_device_equals_fit_with_a_dataloader():
    x, y = data(64)
    cfg = TrainConfig(epochs=2, batch_size=16, mixup_alpha=0.4, **CPU)
    on = fit(model(), (x[:48], y[:48]), (x[48:], y[48:]), cfg)
    off = fit(model(), (x[:48], y[:48]), (x[48:], y[48:]), dataclasses.replace(cfg, data_on_device=False))
    for (k, a), b in zip(on.model.state_dict().items(), off.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert on.history.step_loss == off.history.step_loss


class Fixed(Dataset):
    """A dataset with fixed samples that says so (`to_tensors`), like the course's datasets."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def to_tensors(self):
        return self.x, self.y


class Random(Fixed):
    to_tensors = None  # draws augmentations per sample: must stay on the DataLoader path


def test_what_takes_the_device_path():
    x, y = data(10)
    assert as_tensors((x, y))[0] is x
    assert as_tensors(TensorDataset(x, y))[1] is y
    assert as_tensors(Fixed(x, y))[0] is x
    assert as_tensors(Random(x, y)) is None
    assert as_tensors(DataLoader(TensorDataset(x, y))) is None
    assert isinstance(device_batches(Fixed(x, y), 4, torch.device("cpu")), TensorBatches)
    with pytest.raises(ValueError, match="same length"):
        as_tensors((x, y[:3]))
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(x, y, 0)
