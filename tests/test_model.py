"""The UniRepLKNet family: sizes, cost, exact reparameterization, checkpoint layout, bad input."""
import json
from pathlib import Path

import pytest
import torch

import unirep_lite as u
from unirep_lite.testing import randomize_, relative_error


def use_reference_branches(model):
    """Run every Dilated Reparam Block as the paper's separate branches (eval mode would otherwise
    use the merged kernel), so the deploy model is compared with the real training structure."""
    for mod in model.modules():
        if isinstance(mod, u.DilatedReparamBlock):
            mod.mode = "reference"
    return model


SCHEMA = Path(__file__).resolve().parent / "data" / "official_state_dict_schema.json"  # see data/README.md
ALL = u.list_models()


def test_parameter_counts_match_the_authors_code():
    # measured with the authors' code, 1000-class head
    for name, train, deploy in [("unireplknet_a", 4_649_060, 4_437_300), ("unireplknet_f", 6_489_328, 6_235_216)]:
        m = u.create_model(name)
        assert u.count_params(m) == train
        assert u.count_params(u.reparameterize(m.eval())) == deploy
        assert u.count_params(u.create_model(name, deploy=True)) == deploy


@pytest.mark.parametrize("name", ALL)
def test_parameter_counts_match_paper_table5(name):
    m = u.create_model(name, deploy=True)
    paper = u.VARIANTS[name.removeprefix("unireplknet_")].paper_params_m
    assert abs(u.count_params(m, paper=True) / 1e6 - paper) <= 0.05


@pytest.mark.parametrize("name,macs", [("unireplknet_a", 0.6), ("unireplknet_f", 0.9), ("unireplknet_p", 1.6),
                                       ("unireplknet_n", 2.8), ("unireplknet_t", 4.9)])
def test_macs_at_224(name, macs):
    assert u.VARIANTS[name.removeprefix("unireplknet_")].paper_macs_g == macs
    m = u.create_model(name, deploy=True)
    assert abs(u.count_macs(m, 224) / 1e9 - macs) <= 0.05


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("name", ALL)
def test_deploy_equals_training_structure(name, dtype, tol):
    torch.manual_seed(0)
    m = use_reference_branches(randomize_(u.create_model(name, num_classes=7, in_chans=2), seed=1)).to(dtype).eval()
    x = torch.randn(2, 2, 64, 64, dtype=dtype)
    with torch.no_grad():
        ref = m(x)
        stages_ref = m.forward_stages(x)
        d = u.reparameterize(m)
        out = d(x)
        stages = d.forward_stages(x)
    assert out.dtype == dtype
    assert relative_error(ref, out) < tol
    for a, b in zip(stages_ref, stages):
        assert relative_error(a, b) < tol
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in d.modules())


@pytest.mark.parametrize("variant", ["a", "f"])
@pytest.mark.parametrize("structure", ["train", "deploy"])
def test_state_dict_matches_the_authors_checkpoints(variant, structure):
    schema = json.loads(SCHEMA.read_text())[f"unireplknet_{variant}_{structure}"]
    m = u.create_model(f"unireplknet_{variant}")
    if structure == "deploy":
        m = u.reparameterize(m.eval())
    sd = m.state_dict()
    assert list(sd) == list(schema)  # same keys, same order
    assert {k: list(v.shape) for k, v in sd.items()} == schema
    if structure == "deploy":  # building the deploy structure directly gives the same layout
        direct = u.create_model(f"unireplknet_{variant}", deploy=True).state_dict()
        assert {k: v.shape for k, v in direct.items()} == {k: v.shape for k, v in sd.items()}


def test_lk_size_changes_only_the_large_kernels():
    base = u.create_model("unireplknet_a")
    for K in (3, 7, 11, 17):
        m = u.create_model("unireplknet_a", lk_size=K)
        assert m.kernel_sizes == tuple(tuple(K if k == 13 else k for k in ks) for ks in base.kernel_sizes)
        assert m.dims == base.dims and m.depths == base.depths
    t = u.create_model("unireplknet_t", lk_size=7)
    assert t.kernel_sizes[2][:4] == (7, 3, 7, 3)


def test_bfloat16_reparameterization_runs_and_stays_close():
    m = randomize_(u.create_model("unireplknet_a", num_classes=5), seed=2).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        d = u.reparameterize(m.to(torch.bfloat16))
        out = d(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert relative_error(ref, out.float()) < 0.1  # bf16 has ~3 significant digits


def test_reparameterize_twice_is_harmless_and_copy_leaves_original():
    m = randomize_(u.create_model("unireplknet_a", num_classes=3)).eval()
    x = torch.randn(1, 3, 64, 64)
    d1 = u.reparameterize(m)
    assert not m.deploy and any(isinstance(b, torch.nn.BatchNorm2d) for b in m.modules())
    d2 = u.reparameterize(d1)
    d3 = u.reparameterize(d1, inplace=True)
    assert d3 is d1
    with torch.no_grad():
        assert torch.equal(d1(x), d2(x))
    assert d1.state_dict().keys() == d2.state_dict().keys()


def test_reparameterize_in_training_mode_warns_and_matches_eval_mode():
    m = use_reference_branches(randomize_(u.create_model("unireplknet_a", num_classes=3))).train()
    x = torch.randn(2, 3, 64, 64)
    with pytest.warns(UserWarning, match="training mode"):
        d = u.reparameterize(m)
    assert not d.training and m.training  # the copy is in eval mode, the original untouched
    with torch.no_grad():
        assert relative_error(m.eval()(x), d(x)) < 1e-5


def test_reparameterize_finds_blocks_inside_a_wrapper():
    backbone = randomize_(u.create_model("unireplknet_a", num_classes=4, in_chans=1))
    wrapped = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), backbone).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert relative_error(wrapped(x), u.reparameterize(wrapped)(x)) < 1e-5


def test_forward_shapes_and_headless_features():
    m = u.create_model("unireplknet_a", num_classes=0, in_chans=1)
    x = torch.randn(2, 1, 64, 96)
    stages = m.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [(2, 40, 16, 24), (2, 80, 8, 12), (2, 160, 4, 6), (2, 320, 2, 3)]
    assert m(x).shape == (2, 320) == m.forward_features(x).shape
    assert m.num_features == 320


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="unireplknet_z"), "unknown model"),
    (dict(name="unireplknet_a", lk_size=8), "odd"),
    (dict(name="unireplknet_a", lk_size=19), "expected one of"),
    (dict(name="unireplknet_a", kernel_sizes=((3, 3), (13, 13), (13,) * 5, (13, 13))), "one kernel size per block"),
    (dict(name="unireplknet_a", depths=(2, 2, 6)), "depths must be 4 integers"),
    (dict(name="unireplknet_a", in_chans=0), "in_chans"),
])
def test_bad_configurations_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        u.create_model(**kwargs)


def test_wrong_input_shape_names_what_was_expected():
    m = u.create_model("unireplknet_a", in_chans=1)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        m(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        m(torch.randn(1, 32, 32))


@pytest.mark.parametrize("kw, message", [
    ({"lk_size": 0}, "lk_size must be a positive odd integer"),
    ({"lk_size": True}, "lk_size must be a positive odd integer"),
    ({"lk_size": 4}, "lk_size must be a positive odd integer"),
    ({"num_classes": -5}, "num_classes must be an integer >= 0"),
    ({"num_classes": 2.5}, "num_classes must be an integer >= 0"),
])
def test_create_model_rejects(kw, message):
    with pytest.raises(ValueError, match=message):
        u.create_model("unireplknet_a", **kw)
