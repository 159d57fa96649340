"""Property tests for the pure reparameterization math, over random kernels, groups and dtypes."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from unirep_lite import DilatedReparamBlock
from unirep_lite.reparam import (
    BRANCHES, check_branches, dilated_to_sparse, dilated_to_sparse_transpose, equivalent_kernel_size,
    fold_affine_into_linear, fuse_bn, merge_branches, pad_to,
)
from unirep_lite.testing import randomize_, relative_error

TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 0.05}
dtypes = st.sampled_from([torch.float32, torch.float64, torch.bfloat16])
settings.register_profile("unirep", deadline=None, max_examples=60)
settings.load_profile("unirep")


@st.composite
def conv_config(draw):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 3, 5, 7]))
    r = draw(st.integers(1, 4))
    return cin, cout, groups, k, r


def random_bn(channels, dtype, seed):
    bn = torch.nn.BatchNorm2d(channels)
    randomize_(bn, seed)
    return bn.to(dtype).eval()


@given(conv_config(), dtypes, st.integers(0, 10_000))
def test_fuse_bn_equals_conv_then_bn(cfg, dtype, seed):
    cin, cout, groups, k, r = cfg
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(cout, cin // groups, k, k, generator=g).to(dtype)
    b = torch.randn(cout, generator=g).to(dtype)
    x = torch.randn(2, cin, 12, 12, generator=g).to(dtype)
    bn = random_bn(cout, dtype, seed)
    pad = (equivalent_kernel_size(k, r) - 1) // 2
    with torch.no_grad():
        ref = bn(F.conv2d(x.double(), w.double(), b.double(), padding=pad, dilation=r, groups=groups).to(dtype))
        wf, bf = fuse_bn(w, bn, b)
        out = F.conv2d(x, wf, bf, padding=pad, dilation=r, groups=groups)
    assert wf.dtype == bf.dtype == dtype
    assert relative_error(ref, out) < TOL[dtype]


@given(conv_config(), dtypes, st.integers(0, 10_000))
def test_dilated_kernel_is_a_sparse_large_kernel(cfg, dtype, seed):
    cin, cout, groups, k, r = cfg
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(cout, cin // groups, k, k, generator=g).to(dtype)
    x = torch.randn(1, cin, 16, 16, generator=g).to(dtype)
    sparse = dilated_to_sparse(w, r)
    size = equivalent_kernel_size(k, r)
    assert sparse.shape == (cout, cin // groups, size, size) and sparse.dtype == dtype
    # paper eq. 1 (transposed conv with an identity kernel) gives exactly the same kernel
    if dtype != torch.bfloat16:
        assert torch.equal(sparse, dilated_to_sparse_transpose(w, r))
    # and convolving with it equals the dilated conv
    pad = (size - 1) // 2
    a = F.conv2d(x.double(), w.double(), padding=pad, dilation=r, groups=groups)
    b = F.conv2d(x.double(), sparse.double(), padding=pad, groups=groups)
    assert relative_error(a, b) < 1e-12
    assert int((sparse != 0).sum()) <= w.numel()


@given(st.sampled_from(sorted(BRANCHES)), st.integers(1, 4), dtypes, st.integers(0, 10_000))
def test_merged_block_equals_its_branches(K, channels, dtype, seed):
    torch.manual_seed(seed)
    block = randomize_(DilatedReparamBlock(channels, K), seed).to(dtype).eval()
    block.mode = "reference"  # the paper's separate branches, not the merged eval-mode fast path
    x = torch.randn(2, channels, 20, 20).to(dtype)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert block.lk_origin.weight.shape == (channels, 1, K, K)
    assert out.dtype == dtype
    assert relative_error(ref, out) < TOL[dtype] * (10 if dtype == torch.bfloat16 else 1)


@st.composite
def custom_branches(draw):
    K = draw(st.sampled_from([5, 7, 9, 11, 13, 15, 17, 19, 21]))
    pairs = draw(st.lists(st.tuples(st.sampled_from([1, 3, 5, 7]), st.integers(1, 6)), min_size=1, max_size=4,
                          unique=True).filter(lambda ps: all(equivalent_kernel_size(k, r) <= K for k, r in ps)))
    return K, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


@given(custom_branches(), st.integers(0, 10_000))
def test_custom_branches_merge_exactly_in_float64(cfg, seed):
    K, ks, rs = cfg
    block = randomize_(DilatedReparamBlock(3, K, branches=(ks, rs)), seed).double().eval()
    block.mode = "reference"
    x = torch.randn(1, 3, 24, 24, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        kernel, bias = block.merged_kernel()
        out = F.conv2d(x, kernel, bias, padding=K // 2, groups=3)
    assert relative_error(ref, out) < 1e-12


def test_merge_of_identity_like_branches_by_hand():
    # two 1-channel branches: a 3x3 of ones with r=2 and a 1x1 "2" -> known 5x5 kernel
    w1 = torch.ones(1, 1, 3, 3)
    w2 = torch.full((1, 1, 1, 1), 2.0)
    k, b = merge_branches([(w1, torch.tensor([1.0]), 2), (w2, torch.tensor([0.5]), 1)], 5)
    expected = torch.zeros(5, 5)
    expected[::2, ::2] = 1
    expected[2, 2] += 2
    assert torch.equal(k[0, 0], expected) and torch.equal(b, torch.tensor([1.5]))


def test_fold_affine_into_linear():
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    s, t, c = (torch.randn(n, generator=g, dtype=torch.float64) for n in (4, 4, 6))
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    W2, b2 = fold_affine_into_linear(W, b, s, t, input_shift=c)
    assert torch.allclose(s * ((x + c) @ W.T + b) + t, x @ W2.T + b2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("K,ks,rs,match", [
    (12, (5,), (1,), "positive odd"),
    (13, (5, 7), (1,), "one dilation per branch"),
    (13, (5,), (4,), r"\(k-1\)r\+1 = 17"),
    (13, (4,), (1,), "odd"),
    (13, (3,), (0,), ">= 1"),
    (13, (3, 3), (2, 2), "twice"),
])
def test_invalid_branches(K, ks, rs, match):
    with pytest.raises(ValueError, match=match):
        check_branches(K, ks, rs)
    with pytest.raises(ValueError, match=match):
        DilatedReparamBlock(4, K, branches=(ks, rs))


def test_unknown_default_K_and_bad_shapes():
    with pytest.raises(ValueError, match="expected one of"):
        DilatedReparamBlock(4, 19)
    with pytest.raises(ValueError, match="square conv kernel"):
        dilated_to_sparse(torch.zeros(3, 3), 2)
    with pytest.raises(ValueError, match="cannot centre"):
        pad_to(torch.zeros(1, 1, 5, 5), 3)


def test_branch_table_is_valid():
    for K, (ks, rs) in BRANCHES.items():
        check_branches(K, ks, rs)
