"""Loading checkpoints in the authors' layout: bare or wrapped, training or deploy structure."""
import pytest
import torch
from torch import nn

import unirep_lite as u
from unirep_lite import recipes
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


# A deploy model loads a training checkpoint through a training twin built with the model's own
# structure options, whatever they are, bare or inside a wrapper (a recipe's front-end + backbone).
SMALL = dict(num_classes=5, in_chans=1, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))  # SmaK and LarK blocks
STRUCTURES = {
    "default": {},
    "no branches": dict(branches=((), ())),
    "other branches": dict(branches=((5, 3), (1, 2))),
    "no layer scale": dict(layer_scale_init_value=None),
    "K=7, no branches, no layer scale": dict(lk_size=7, branches=((), ()), layer_scale_init_value=None),
}


def build(options, wrapped, deploy=False):
    torch.manual_seed(0)
    backbone = u.create_model("unireplknet_a", deploy=deploy, **SMALL, **options)
    if not wrapped:
        return backbone
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3, padding=1), backbone)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)], ids=["fp32", "fp64"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
@pytest.mark.parametrize("options", STRUCTURES.values(), ids=list(STRUCTURES))
def test_training_checkpoint_into_deploy_model_of_any_structure(tmp_path, options, wrapped, dtype, tol):
    trained = randomize_(build(options, wrapped), seed=4).to(dtype).eval()
    path = u.save_checkpoint(trained, tmp_path / "train.pth")
    deploy = u.load_checkpoint(build(options, wrapped, deploy=True).to(dtype), path).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deploy.modules())
    x = torch.randn(2, 1, 32, 32, dtype=dtype)
    with torch.no_grad():
        out = deploy(x)
        assert out.dtype == dtype and relative_error(trained(x), out) < tol


def test_config_rebuilds_the_training_structure():
    m = u.reparameterize(build(STRUCTURES["K=7, no branches, no layer scale"], wrapped=False).eval())
    twin = u.UniRepLKNet(**m.config)
    assert str(twin) == str(build(STRUCTURES["K=7, no branches, no layer scale"], wrapped=False))


def test_deploy_checkpoint_into_wrapped_training_model_is_refused(tmp_path):
    path = u.save_checkpoint(u.reparameterize(build({}, wrapped=True).eval()), tmp_path / "deploy.pth")
    with pytest.raises(ValueError, match=r"under '2'.*deploy=True"):
        u.load_checkpoint(build({}, wrapped=True), path)


def test_a_recipe_model_loads_its_training_checkpoint_in_deploy_structure(tmp_path):
    recipe = recipes.get("digits")
    trained = randomize_(recipe.make_model(size="fast"), seed=5).eval()
    path = u.save_checkpoint(trained, tmp_path / "digits.pth")
    deploy = u.load_checkpoint(recipe.make_model(size="fast", deploy=True), path).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert relative_error(trained(x), deploy(x)) < 1e-5


def test_create_model_with_weights_keeps_the_builders_arguments(tmp_path, trained):
    m = u.create_model("unireplknet_a", 4, 2, depths=(1, 1, 1, 1))  # positional num_classes, in_chans
    assert (m.num_classes, m.in_chans) == (4, 2)
    path = u.save_checkpoint(trained, tmp_path / "a.pth")
    m = u.create_model("unireplknet_a", 10, pretrained=path, deploy=True)
    assert m.deploy and torch.equal(m.head.weight, trained.head.weight)


def _small(dims=(8, 16, 24, 32), num_classes=3, deploy=False):
    return u.create_model("unireplknet_a", num_classes=num_classes, in_chans=1, depths=(1, 1, 1, 1),
                                    dims=dims, lk_size=7, deploy=deploy)


def test_load_checkpoint_strict_false_loading_nothing_or_little(tmp_path):
    torch.save(u.create_model("unireplknet_f").state_dict(), tmp_path / "f.pt")
    with pytest.raises(ValueError, match="no tensor of the checkpoint matches the model"):  # F into A
        u.load_checkpoint(u.create_model("unireplknet_a", num_classes=10), tmp_path / "f.pt",
                                    strict=False)
    torch.save(_small(num_classes=7).state_dict(), tmp_path / "head.pt")
    with pytest.warns(UserWarning, match=r"loaded \d+ of the model's \d+ tensors"):
        u.load_checkpoint(_small(), tmp_path / "head.pt", strict=False)
