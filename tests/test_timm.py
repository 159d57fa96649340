"""timm-native UniRepLKNet: registry, create_model, features_only, reparameterize_model, local weights."""
import importlib
import warnings

import pytest
import torch

import unirep_lite
from unirep_lite import timm_models

timm = pytest.importorskip("timm")
from timm.utils import reparameterize_model  # noqa: E402

SMALL = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))  # every block kind (SmaK 3x3, LarK 13) in a few ms


def _random_bn_stats(model):
    """Non-trivial BatchNorm statistics and affines, so reparameterization has something to fold."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model


def test_all_nine_variants_registered():
    names = unirep_lite.list_models()
    assert len(names) == 9 and set(names) <= set(timm.list_models("unireplknet_*"))
    assert "unireplknet_a.in1k" in timm.list_pretrained("unireplknet_*")
    cfg = timm.models.get_pretrained_cfg("unireplknet_s.in22k")
    assert cfg.hf_hub_id == "DingXiaoH/UniRepLKNet" and cfg.hf_hub_filename == "unireplknet_s_in22k_pretrain.pth"
    assert cfg.num_classes == 21841


@pytest.mark.parametrize("name", ["unireplknet_a", "unireplknet_t"])
def test_create_model_equals_ours(name):
    torch.manual_seed(0)
    ours = unirep_lite.create_model(name, num_classes=10, in_chans=1, **SMALL).double().eval()
    torch.manual_seed(0)
    theirs = timm.create_model(name, num_classes=10, in_chans=1, **SMALL).double().eval()
    assert type(theirs) is unirep_lite.UniRepLKNet
    assert theirs.pretrained_cfg["hf_hub_filename"].startswith(name)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() < 1e-10


def test_timm_create_model_builds_the_default_model():
    model = timm.create_model("unireplknet_a", num_classes=10, in_chans=1)
    ref = unirep_lite.create_model("unireplknet_a", num_classes=10, in_chans=1)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


def test_reparameterize_model_equals_ours():
    torch.manual_seed(0)
    model = _random_bn_stats(timm.create_model("unireplknet_a", num_classes=10, **SMALL)).double().eval()
    ours = unirep_lite.reparameterize(model)
    theirs = reparameterize_model(model)  # calls reparameterize() on the blocks and their DilatedReparamBlocks
    assert str(theirs) == str(ours) and theirs.deploy and ours.deploy
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert list(sd_ours) == list(sd_theirs)
    assert all(torch.equal(sd_ours[k], sd_theirs[k]) for k in sd_ours)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert (theirs(x) - model(x)).abs().max().item() < 1e-10
        assert (theirs(x) - ours(x)).abs().max().item() < 1e-10
    # the deploy structure equals one built directly, key for key
    direct = unirep_lite.create_model("unireplknet_a", num_classes=10, deploy=True, **SMALL)
    assert {k: v.shape for k, v in direct.state_dict().items()} == {k: v.shape for k, v in sd_theirs.items()}


def test_switch_to_deploy_alias():
    torch.manual_seed(0)
    model = _random_bn_stats(unirep_lite.create_model("unireplknet_a", num_classes=10, **SMALL)).double().eval()
    ref = unirep_lite.reparameterize(model)
    model.switch_to_deploy()  # mmpretrain's name, in place
    assert model.deploy and str(model) == str(ref)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() < 1e-10


def test_features_only():
    feats = timm.create_model("unireplknet_a", features_only=True, out_indices=(1, 3), **SMALL)
    assert feats.feature_info.channels() == [16, 64] and feats.feature_info.reduction() == [8, 32]
    x = torch.randn(2, 3, 64, 64)
    out = feats(x)
    assert [tuple(o.shape) for o in out] == [(2, 16, 8, 8), (2, 64, 2, 2)]
    stages = feats.model.forward_stages(x)
    assert torch.equal(out[0], stages[1]) and torch.equal(out[1], stages[3])
    with pytest.raises(ValueError, match="out_indices"):
        timm.create_model("unireplknet_a", features_only=True, out_indices=(4,), **SMALL)


def test_local_pretrained_file_loads_through_timm(tmp_path):
    torch.manual_seed(0)
    source = _random_bn_stats(unirep_lite.create_model("unireplknet_a", **SMALL))
    path = tmp_path / "unireplknet_a_in1k_224_acc77.03.pth"
    torch.save({"model": source.state_dict()}, path)  # wrapped, as the authors' files are
    model = timm.create_model("unireplknet_a", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **SMALL)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
    # another number of classes and input channels: the head stays new, the stem is adapted (timm's rule)
    model = timm.create_model("unireplknet_a", pretrained=True, num_classes=5, in_chans=1,
                              pretrained_cfg_overlay=dict(file=str(path)), **SMALL)
    assert model.head.out_features == 5
    assert torch.equal(model.stages[2][0].dwconv.lk_origin.weight, source.stages[2][0].dwconv.lk_origin.weight)
    assert torch.allclose(model.downsample_layers[0][0].weight,
                          source.downsample_layers[0][0].weight.sum(1, keepdim=True))
    # a deploy model loads the training-structure file (unirep_lite.load_checkpoint converts it)
    deploy = timm.create_model("unireplknet_a", pretrained=True, deploy=True,
                               pretrained_cfg_overlay=dict(file=str(path)), **SMALL).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(deploy(x), source.eval()(x), atol=1e-5)
    # no file given: A, F, P, N come from the cache of `python -m unirep_lite.pretrained`; the others can't
    with pytest.raises(FileNotFoundError, match="python -m unirep_lite.pretrained download A"):
        timm.create_model("unireplknet_a", pretrained=True, cache_dir=tmp_path / "empty", **SMALL)
    with pytest.raises(RuntimeError, match="downloads nothing"):
        timm.create_model("unireplknet_t", pretrained=True, **SMALL)


def test_reimport_and_foreign_registration_are_harmless():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(timm_models)
        assert timm_models.register() == []  # already ours: nothing registered twice, no warning
    assert callable(timm_models.unireplknet_a)
    from timm.models import _registry

    saved = _registry._model_entrypoints["unireplknet_f"]
    try:
        def unireplknet_f(pretrained=False, **kwargs):  # someone else's model under our name
            return torch.nn.Identity()
        _registry._model_entrypoints["unireplknet_f"] = unireplknet_f
        with pytest.warns(UserWarning, match="leaves it"):
            timm_models.register()
        assert isinstance(timm.create_model("unireplknet_f"), torch.nn.Identity)
    finally:
        _registry._model_entrypoints["unireplknet_f"] = saved


def test_one_entrypoint_per_variant():
    assert [fn.__name__ for fn in timm_models.ENTRYPOINTS] == unirep_lite.list_models()
    for name in unirep_lite.list_models():
        assert getattr(timm_models, name).__module__ == timm.models.model_entrypoint(name).__module__ \
            == "unirep_lite.timm_models"


def test_registration_without_timm(python_without):
    python_without("timm",
                   "import unirep_lite\n"
                   "from unirep_lite import timm_models\n"
                   "assert timm_models.timm is None and timm_models.register() == []\n"
                   "assert unirep_lite.create_model('unireplknet_a', depths=(1, 1, 1, 1)).num_classes == 1000\n")
