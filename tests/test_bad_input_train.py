"""Model arguments and checkpoint loading refuse bad input with an error that names it."""
import pytest
import torch

import unirep_lite


@pytest.mark.parametrize("kw, message", [
    ({"lk_size": 0}, "lk_size must be a positive odd integer"),
    ({"lk_size": True}, "lk_size must be a positive odd integer"),
    ({"lk_size": 4}, "lk_size must be a positive odd integer"),
    ({"num_classes": -5}, "num_classes must be an integer >= 0"),
    ({"num_classes": 2.5}, "num_classes must be an integer >= 0"),
])
def test_create_model_rejects(kw, message):
    with pytest.raises(ValueError, match=message):
        unirep_lite.create_model("unireplknet_a", **kw)


def _small(dims=(8, 16, 24, 32), num_classes=3, deploy=False):
    return unirep_lite.create_model("unireplknet_a", num_classes=num_classes, in_chans=1, depths=(1, 1, 1, 1),
                                    dims=dims, lk_size=7, deploy=deploy)


def test_load_checkpoint_strict_false_loading_nothing_or_little(tmp_path):
    torch.save(unirep_lite.create_model("unireplknet_f").state_dict(), tmp_path / "f.pt")
    with pytest.raises(ValueError, match="no tensor of the checkpoint matches the model"):  # F into A
        unirep_lite.load_checkpoint(unirep_lite.create_model("unireplknet_a", num_classes=10), tmp_path / "f.pt",
                                    strict=False)
    torch.save(_small(num_classes=7).state_dict(), tmp_path / "head.pt")
    with pytest.warns(UserWarning, match=r"loaded \d+ of the model's \d+ tensors"):
        unirep_lite.load_checkpoint(_small(), tmp_path / "head.pt", strict=False)
