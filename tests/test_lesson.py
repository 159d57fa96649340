"""The central experiment's pieces: the arms differ in one thing each, and a tiny run goes end to end."""
import json

import matplotlib
import numpy as np
import pytest
import torch

import unirep_lite
from unirep_lite import lesson
from unirep_lite.blocks import GRN, DilatedReparamBlock
from unirep_lite.erf import theoretical_receptive_field
from unirep_lite.stats import count_macs, count_params

matplotlib.use("Agg")


def test_setups():
    fast, full = lesson.setup("fast"), lesson.setup("full")
    assert len(fast.seeds) >= 3 and len(full.seeds) >= len(fast.seeds)
    assert full.n_train > fast.n_train and full.epochs > fast.epochs
    assert lesson.setup("fast", epochs=7).epochs == 7
    assert (fast.size // 8) % 2 == 0       # stage 2's centre cell (h // 2) sits on the image centre
    with pytest.raises(ValueError, match="unknown arm"):
        lesson.arm("K=99")


def test_arms_differ_in_one_thing(one_thread):
    s = lesson.setup("fast")
    models = {a.name: a.build(s) for a in lesson.ARMS}
    k13 = models["K=13"]
    blocks = [m for m in k13.modules() if isinstance(m, DilatedReparamBlock)]
    assert blocks and all(b.ks == (5, 7, 3, 3, 3) for b in blocks)           # the authors' branches
    plain = [m for m in models["K=13, no dilated branches"].modules() if isinstance(m, DilatedReparamBlock)]
    assert len(plain) == len(blocks) and all(b.ks == () and b.K == 13 for b in plain)
    assert not any(isinstance(m, DilatedReparamBlock) for m in models["K=3"].modules())
    # wide vs deep: the deeper K=3 model has about the cost of the shallow K=13 one
    deep = models["K=3, deeper"]
    assert sum(deep.depths) > sum(k13.depths)
    assert abs(count_params(deep) / count_params(k13) - 1) < 0.1
    assert abs(count_macs(deep, s.size) / count_macs(k13, s.size) - 1) < 0.3


def test_the_answer_sees_only_what_the_kernels_reach(one_thread):
    # The far end lies beyond K=3's field (a mark 2 px wide, d px out) and inside K=13's.
    s = lesson.setup("fast")
    torch.manual_seed(0)
    k3, k13 = lesson.arm("K=3").build(s).eval(), lesson.arm("K=13").build(s).eval()
    rf3, rf13 = (theoretical_receptive_field(m, -1, s.size, 1) for m in (k3, k13))
    assert rf3 // 2 < s.distances[-1] - 2 and rf13 // 2 > s.distances[-1] + 2
    x = torch.zeros(2, 1, s.size, s.size)
    x[1] = 3.0                               # image 1 is bright wherever K=3's field cannot reach:
    lo, hi = s.size // 2 - rf3 // 2 - 8, s.size // 2 + rf3 // 2 + 8  # the field around the answer cell,
    x[1, 0, lo:hi, lo:hi] = 0.0              # with 8 px to spare, is dark in both
    with_se = lesson.arm("K=3").build(lesson.setup("fast", global_paths=True)).eval()
    with torch.no_grad():
        for m in (k3, with_se):              # like a trained model: every branch active (at init the
            for p in m.parameters():         # FFN's last BN is 0); the frozen GRN gamma stays 0
                if p.requires_grad:
                    p.normal_(0.0, 0.3)
        # how much the far region moves the answer; bitwise equality is not promised across inputs
        # (oneDNN may pick other kernels), so "cannot count" is: below float rounding of the output
        effect = lambda m: (m(x)[0] - m(x)[1]).abs().max().item()  # noqa: E731
        rounding = 1e-5 * k3(x).abs().max().item()
        assert effect(k3) <= rounding                   # SE and GRN off: the far pixel cannot count
        assert effect(with_se) > 20 * rounding          # SE's global average carries it to the centre
        for block in k3.modules():           # GRN's global norm alone, made active: now it counts
            if isinstance(block, GRN):
                block.gamma.fill_(1.0)
        assert effect(k3) > 20 * rounding


def test_branches_option_reparameterizes_exactly(one_thread):
    torch.manual_seed(0)
    model = unirep_lite.create_model("unireplknet_a", num_classes=2, in_chans=1, depths=(1, 1, 1, 1),
                                     dims=(8, 16, 16, 16), branches=lesson.NO_DILATION).eval()
    x = torch.randn(2, 1, 32, 32)
    assert torch.allclose(unirep_lite.reparameterize(model)(x), model(x), atol=1e-5)


def test_tiny_run_end_to_end(one_thread):
    s = lesson.setup("fast", size=32, distances=(6, 12), n_train=64, n_test=40, epochs=1, seeds=(0, 1),
                     dims=(8, 16, 16, 16), erf_images=2)
    arms = [lesson.arm("K=3"), lesson.arm("K=13")]
    res = lesson.run(s, arms, progress=False)
    assert res.arms() == ["K=3", "K=13"] and len(res.runs) == 4
    acc = res.accuracies("K=13")
    assert acc.shape == (2, 2) and ((0 <= acc) & (acc <= 1)).all()
    rows = res.table()
    assert [r["arm"] for r in rows] == ["K=3", "K=13"] and "d=12" in rows[0]
    cmp = res.compare_far("K=13", "K=3")
    assert cmp["gap"] == pytest.approx(res.far("K=13").mean() - res.far("K=3").mean())
    json.dumps(res.to_dict())  # JSON-ready
    images = lesson.erf_inputs(s)
    erfs = lesson.trained_erfs(res, images)
    assert [len(v) for v in erfs.values()] == [2, 2]
    maps = {k: lesson.mean_erf_map(v) for k, v in erfs.items()}
    assert all(m.shape == (32, 32) and np.isclose(m.sum(), 1) for m in maps.values())
    ratios = {k: float(np.mean([e.area_ratios()[0.5] for e in v])) for k, v in erfs.items()}
    lesson.plot_erf_overlays(maps, images[0], ratios)
    lesson.plot_accuracy(res)
    with pytest.raises(ValueError, match="no runs"):
        res.accuracies("K=7")


@pytest.mark.parametrize("override, message", [
    ({"size": 70}, "size must be a multiple of 16"), ({"n_train": 0}, "n_train must be an integer >= 1"),
    ({"distances": (50,)}, "distances must be integers from 1 to"), ({"seeds": ()}, "seeds must name"),
    ({"lr": -1.0}, "lr must be a finite number > 0"), ({"epochs": 2.5}, "epochs must be an integer"),
    ({"stages": 5}, "stages must be an integer in"),
])
def test_a_setup_checks_its_fields(override, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lesson.setup("fast", **override)
