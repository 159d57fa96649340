"""Loading checkpoints in the authors' layout: bare or wrapped, training or deploy structure."""
import pytest
import torch

import unirep_lite as u
from unirep_lite.testing import randomize_, relative_error


@pytest.fixture(scope="module")
def trained():
    return randomize_(u.create_model("unireplknet_a", num_classes=10), seed=3).eval()


@pytest.mark.parametrize("wrap", [None, "model", "state_dict"])
def test_training_checkpoint_loads_bare_or_wrapped(tmp_path, trained, wrap):
    sd = trained.state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save(sd if wrap is None else {wrap: sd, "epoch": 3}, path)
    m = u.create_model("unireplknet_a", num_classes=10, pretrained=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), trained(x))


def test_training_checkpoint_into_deploy_model_is_reparameterized(tmp_path, trained):
    path = u.save_checkpoint(trained, tmp_path / "train.pth")
    d = u.create_model("unireplknet_a", num_classes=10, deploy=True)
    u.load_checkpoint(d, path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(trained(x), d.eval()(x)) < 1e-5


def test_deploy_checkpoint_round_trip_and_refused_by_training_model(tmp_path, trained):
    path = u.save_checkpoint(u.reparameterize(trained), tmp_path / "deploy.pth")
    d = u.load_checkpoint(u.create_model("unireplknet_a", num_classes=10, deploy=True), path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(trained(x), d(x)) < 1e-5
    with pytest.raises(ValueError, match="deploy=True"):
        u.load_checkpoint(u.create_model("unireplknet_a", num_classes=10), path)


def test_mismatch_lists_missing_unexpected_and_shapes(trained):
    sd = dict(trained.state_dict())
    sd.pop("head.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["head.weight"] = torch.zeros(5, 320)
    with pytest.raises(ValueError) as err:
        u.load_checkpoint(u.create_model("unireplknet_a", num_classes=10), sd)
    msg = str(err.value)
    assert "1 missing keys: head.bias" in msg
    assert "1 unexpected keys: extra.weight" in msg
    assert "shape of head.weight: model (10, 320), checkpoint (5, 320)" in msg


def test_non_strict_load_skips_only_mismatched_keys(trained):
    m = u.create_model("unireplknet_a", num_classes=3)  # new head, same backbone: fine-tuning
    u.load_checkpoint(m, trained.state_dict(), strict=False)
    assert torch.equal(m.stages[2][0].dwconv.lk_origin.weight, trained.stages[2][0].dwconv.lk_origin.weight)


def test_missing_file_and_garbage(tmp_path):
    m = u.create_model("unireplknet_a")
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        u.load_checkpoint(m, tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="state_dict"):
        u.load_checkpoint(m, {"model": {"a": 1}})
