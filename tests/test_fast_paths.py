"""Every fast path gives the outputs and gradients of the straightforward computation (speed is not tested)."""
import pytest
import torch
import torch.nn.functional as F

import unirep_lite as u
from unirep_lite import DilatedReparamBlock
from unirep_lite.dwconv import depthwise_conv2d
from unirep_lite.model import set_fast_train, set_reference
from unirep_lite.testing import randomize_, relative_error

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}
SMALL = dict(dims=(8, 16, 24, 32))  # the A architecture (depths, kernels, branches) at small width


def layout(x, cl):
    return x.contiguous(memory_format=torch.channels_last) if cl else x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k,r,hw", [(13, 1, (9, 9)), (13, 1, (4, 6)), (7, 2, (9, 5)), (3, 5, (8, 8)),
                                    (5, 1, (1, 3)), (3, 4, (12, 12))])
@pytest.mark.parametrize("cl", [False, True])
def test_depthwise_conv_matches_conv2d_with_gradients(dtype, k, r, hw, cl):
    g = torch.Generator().manual_seed(k * 10 + r)
    C = 3
    x = layout(torch.randn(2, C, *hw, generator=g, dtype=dtype), cl).requires_grad_()
    w = torch.randn(C, 1, k, k, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(C, generator=g, dtype=dtype, requires_grad=True)
    gy = torch.randn(2, C, *hw, generator=g, dtype=dtype)
    pad = (k - 1) * r // 2
    ref = F.conv2d(x, w, b, padding=pad, dilation=r, groups=C)
    ref_grads = torch.autograd.grad(ref, (x, w, b), gy)
    out = depthwise_conv2d(x, w, b, r)
    grads = torch.autograd.grad(out, (x, w, b), gy)
    assert out.shape == ref.shape and out.dtype == dtype
    assert relative_error(ref, out) < TOL[dtype]
    for a, c in zip(ref_grads, grads):
        assert a.shape == c.shape and relative_error(a, c) < TOL[dtype]


def grads_of(module, x, seed=0):
    """Output, d(loss)/dx and d(loss)/d(every parameter) for a fixed random loss."""
    x = x.detach().clone().requires_grad_()
    out = module(x)
    gy = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out, [x] + params, gy.to(out), allow_unused=True)
    return out.detach(), grads


def assert_same(a, b, tol):
    (out_a, grads_a), (out_b, grads_b) = a, b
    assert relative_error(out_a, out_b) < tol
    # some gradients are zero in exact arithmetic (a BN's beta before another BN in training mode):
    # measure every error against the largest gradient, not against rounding noise
    scale = max(g.double().norm().item() for g in grads_a if g is not None)
    for ga, gb in zip(grads_a, grads_b):
        if ga is None or gb is None:
            assert ga is None and gb is None
        else:
            err = (ga.double() - gb.double()).norm().item()
            assert err < tol * max(ga.double().norm().item(), 1e-2 * scale)


def modes_agree(module, x, modes, tol, training):
    """Run `module` in each mode from the same state; outputs, gradients and BN statistics agree."""
    state = {k: v.clone() for k, v in module.state_dict().items()}
    results, stats = [], []
    for mode in modes:
        module.load_state_dict(state)
        for m in module.modules():
            if isinstance(m, DilatedReparamBlock):
                m.mode = mode
        module.train(training)
        results.append(grads_of(module, x))
        stats.append([b.clone() for n, b in module.named_buffers() if "running" in n])
    for r, s in zip(results[1:], stats[1:]):
        assert_same(results[0], r, tol)
        for a, b in zip(stats[0], s):
            assert relative_error(a, b) < tol
    module.load_state_dict(state)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("K,hw", [(13, (10, 10)), (7, (5, 7)), (17, (6, 6))])
def test_exact_block_equals_the_straightforward_one(dtype, training, K, hw):
    block = randomize_(DilatedReparamBlock(4, K), seed=K).to(dtype)
    x = torch.randn(3, 4, *hw, dtype=dtype)
    modes_agree(block, x, ["reference", "exact"], TOL[dtype], training)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype,res,cl", [(torch.float64, 32, False), (torch.float32, 64, True)])
def test_exact_model_equals_the_straightforward_one(dtype, training, res, cl):
    torch.manual_seed(0)
    model = randomize_(u.create_model("unireplknet_a", num_classes=5, **SMALL), seed=3).to(dtype)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    x = layout(torch.randn(2, 3, res, res, dtype=dtype), cl)
    modes_agree(model, x, ["reference", "exact"], TOL[dtype] * 10, training)


@pytest.mark.parametrize("res", [32, 64])
def test_deploy_structure_with_cropped_kernels_equals_the_training_structure(res):
    # at 32x32 the last stage is 1x1 and the third 2x2: most of each 13x13 kernel is cropped away
    model = randomize_(u.create_model("unireplknet_a", num_classes=5, **SMALL), seed=4).double()
    set_reference(model)
    x = torch.randn(2, 3, res, res, dtype=torch.float64)
    with torch.no_grad():
        ref = model.eval()(x)
        out = u.reparameterize(model)(x)
    assert relative_error(ref, out) < 1e-10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("structure", ["train", "eval", "deploy"])
@pytest.mark.parametrize("K,cl", [(13, True), (3, False)])
def test_block_ffn_as_1x1_convs_and_in_place_inference_equal_the_literal_block(dtype, structure, K, cl):
    block = randomize_(u.UniRepLKNetBlock(8, K), seed=6).to(dtype)
    block.train(structure == "train")
    if structure == "deploy":
        block.reparameterize()
    x = layout(torch.randn(2, 8, 9, 9, dtype=dtype), cl)
    state = {k: v.clone() for k, v in block.state_dict().items()}
    set_reference(block)  # the authors' formulation: permute + Linear, separate branches
    literal = grads_of(block, x)
    set_reference(block, False)
    block.load_state_dict(state)  # the literal run updated the BN statistics in training mode
    # training-mode BNs turn float32 rounding into gradient noise ~3e-7 of the largest gradient
    assert_same(literal, grads_of(block, x), TOL[dtype] * (5 if structure == "train" else 1))
    block.load_state_dict(state)
    x_before = x.clone()
    with torch.no_grad():  # inference: the element-wise steps run in place, never on the input
        out = block(x)
    assert torch.equal(x, x_before)
    assert relative_error(literal[0], out) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_train_mode_is_the_branches_with_fixed_statistics(dtype):
    # in fast-training mode each branch is conv -> (gamma / sqrt(running_var + eps), beta - ...):
    # exactly the straightforward block in eval mode, but trainable in training mode
    block = randomize_(DilatedReparamBlock(4, 13), seed=5).to(dtype)
    x = torch.randn(3, 4, 11, 11, dtype=dtype)
    set_fast_train(block)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    fast_out = grads_of(block.train(), x)
    block.mode = "reference"
    assert_same(grads_of(block.eval(), x), fast_out, TOL[dtype])
    for k, v in block.state_dict().items():  # running statistics stay frozen in fast-training mode
        assert torch.equal(v, before[k])


def test_fast_train_model_keeps_keys_trains_and_reparameterizes_exactly():
    torch.manual_seed(0)
    model = u.create_model("unireplknet_a", num_classes=3, **SMALL)
    keys = {k: v.shape for k, v in model.state_dict().items()}
    set_fast_train(model).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    branch_bn = model.stages[1][0].dwconv.dil_bn_k7_2
    gamma = branch_bn.weight.clone()
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert not torch.equal(gamma, branch_bn.weight)  # the per-branch scales learn
    assert {k: v.shape for k, v in model.state_dict().items()} == keys
    with torch.no_grad():
        ref = model.eval()(x)
        out = u.reparameterize(model)(x)
    assert relative_error(ref, out) < 1e-5


def test_modes_are_checked_and_bad_shapes_named():
    block = DilatedReparamBlock(4, 7)
    block.mode = "turbo"
    with pytest.raises(ValueError, match="mode must be one of"):
        block(torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"depthwise weight \(C, 1, k, k\)"):
        depthwise_conv2d(torch.randn(1, 4, 8, 8), torch.randn(3, 1, 3, 3))
    with pytest.raises(ValueError, match="square odd kernel"):
        depthwise_conv2d(torch.randn(1, 4, 8, 8), torch.randn(4, 1, 4, 4))


def test_bench_runs_and_prints_a_table(capsys):
    from unirep_lite import bench

    rows = bench.main(["--models", "a", "--layouts", "cl", "--no-compile", "--infer-res", "32", "--infer-batch", "2",
                       "--train-res", "32", "--train-batch", "2", "--repeats", "1", "--warmup", "1",
                       "--min-time", "0", "--threads", "1"])
    text = capsys.readouterr().out
    assert all(r.error is None and len(r.ips) == 1 for r in rows)
    for word in ("convnextv2_atto", "deploy", "fast-train", "reference", "targets"):
        assert word in text
    with pytest.raises(SystemExit):
        bench.parse(["--models", "z"])


def test_bench_times_each_recipes_real_training_step_next_to_convnext(capsys):
    from unirep_lite import bench

    rows = bench.main(["--models", "a", "--layouts", "cl", "--no-compile", "--infer-res", "32", "--infer-batch", "2",
                       "--train-res", "32", "--train-batch", "2", "--repeats", "1", "--warmup", "1",
                       "--min-time", "0", "--threads", "1", "--recipes", "digits,weather"])
    recipe_rows = [r for r in rows if r.task == "recipe"]
    assert {(r.model, r.variant) for r in recipe_rows} == {
        (m, v) for m in ("unireplknet_a", "convnextv2_atto") for v in ("digits", "weather")}
    assert all(r.error is None and r.ips for r in recipe_rows)
    assert "recipe" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.parse(["--recipes", "cooking"])
