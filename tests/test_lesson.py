"""The central experiment's pieces: the arms differ in one thing each, and a tiny run goes end to end."""
import json

import matplotlib
import numpy as np
import pytest
import torch

import unirep_lite
from unirep_lite import erf, lesson, miniature, reparam
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
    drb = lambda name: [m for m in models[name].modules() if isinstance(m, DilatedReparamBlock)]  # noqa: E731
    blocks = drb("K=13")
    assert blocks and all(b.ks == (5, 7, 3, 3, 3) and b.rs == (1, 2, 3, 4, 5) for b in blocks)  # the authors'
    assert all(b.ks == () and b.K == 13 for b in drb("K=13 alone"))
    assert all(b.ks == (5, 7, 3) and b.rs == (1, 1, 1) for b in drb("variant A"))
    assert all(b.ks == (5, 13, 7, 9, 11) and b.rs == (1,) * 5 for b in drb("variant B"))
    assert not any(isinstance(m, DilatedReparamBlock) for m in models["K=3"].modules())
    assert not drb("K=3 x6") and len(drb("K=7 x2")) == 2


def test_table_2_variants_follow_the_paper():
    ks, rs = reparam.BRANCHES[13]
    # variant A: the dilated branches' kernel sizes (paper: 5, 7, 3, 3, 3), no dilation; a block
    # holds each (k, r) once, so the three parallel 3 x 3 branches are one
    assert lesson.variant_a(13) == ((5, 7, 3), (1, 1, 1)) and set(lesson.variant_a(13)[0]) == set(ks)
    # variant B: non-dilated kernels of the branches' equivalent sizes (paper: 5, 13, 7, 9, 11)
    assert lesson.variant_b(13) == ((5, 13, 7, 9, 11), (1,) * 5)
    assert lesson.variant_b(13)[0] == tuple((k - 1) * r + 1 for k, r in zip(ks, rs))
    for K in (7, 9, 11, 13, 15, 17):  # valid branches for every K the authors list
        for ks_, rs_ in (lesson.variant_a(K), lesson.variant_b(K)):
            reparam.check_branches(K, ks_, rs_)


def test_equal_reach_arms_have_one_theoretical_field(one_thread):
    s = lesson.setup("fast")
    fields = {a: theoretical_receptive_field(lesson.arm(a).build(s), -1, s.size, 1) for a in lesson.EQUAL_REACH}
    assert len(set(fields.values())) == 1 and fields["K=13"] == lesson.field_at_answer(lesson.arm("K=13"), s)
    # and not by accident of the image size: one block fewer falls short
    shallower = lesson.Arm("K=3 x5", 3, depths=(1, 5, 1, 1))
    assert lesson.field_at_answer(shallower, s) < fields["K=3 x6"]
    assert lesson.field_at_answer(lesson.arm("K=3"), s) < fields["K=13"]
    # every Table 2 arm has K=13's field too: only the branches differ
    assert {lesson.field_at_answer(lesson.arm(a), s) for a in lesson.TABLE_2} == {fields["K=13"]}


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


def _trained_like(model):
    """Random weights everywhere (as after training every branch is active), running BN statistics."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0.0, 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", ["K=13", "variant A", "variant B"])
def test_branch_contributions_add_up_to_the_erf(one_thread, name):
    s = lesson.setup("fast", size=48, distances=(5, 11, 17))
    model = _trained_like(lesson.arm(name).build(s))
    images = lesson.erf_inputs(s, 3)
    maps = lesson.branch_erfs(model, images)
    ks, rs = lesson.arm(name).branches or reparam.BRANCHES[13]
    assert list(maps) == ["13x13 (large)", *(lesson.branch_name(k, r) for k, r in zip(ks, rs)), "skip", "all"]
    parts = sum(v for k, v in maps.items() if k != "all")
    assert np.allclose(parts, maps["all"], rtol=0, atol=1e-9 * maps["all"].max())   # exact, to rounding
    whole = erf.compute_erf(model, images, progress=False).raw                      # the ERF itself
    assert np.allclose(maps["all"], whole, rtol=0, atol=1e-5 * whole.max())
    # the residual path reaches only stage 1's field: nothing beyond it
    stage1 = lesson.field_at_answer(lesson.arm("K=3"), s) // 2 - 8   # stage 2's K=3 conv adds 8 px
    shares = lesson.far_share(maps, stage1)
    assert shares["skip"][1] == 0.0 and sum(w for w, _ in shares.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="exactly one Dilated Reparam Block"):
        lesson.branch_erfs(lesson.arm("K=3").build(s), images)


def test_compare_calls_robust_only_beyond_the_seed_spread():
    assert lesson.compare([0.9, 0.92], [0.5, 0.55])["robust"]
    assert not lesson.compare([0.9, 0.6], [0.5, 0.7])["robust"]          # overlapping seeds
    assert not lesson.compare([0.5, 0.55], [0.9, 0.92])["robust"]        # the other way round
    fewer = lesson.compare([40, 50], [90, 100], higher_is_better=False)  # fewer steps is better
    assert fewer["robust"] and fewer["gap"] == -50
    text = lesson.sentence(lesson.compare([0.9, 0.92], [0.5, 0.55]), "a", "b", "acc")
    assert text == "acc: a 91.0 vs b 52.5 (gap +38.5 points, seed spread 5.0): robust across seeds"


def test_tiny_run_end_to_end(one_thread):
    s = lesson.setup("fast", size=32, distances=(6, 12), n_train=64, n_test=40, epochs=2, seeds=(0, 1),
                     dims=(8, 16, 16, 16), erf_images=2)
    arms = [lesson.arm("K=3"), lesson.arm("K=13")]
    res = lesson.run(s, arms, progress=False, curve_distances=(12,))
    assert res.arms() == ["K=3", "K=13"] and len(res.runs) == 4
    acc = res.accuracies("K=13")
    assert acc.shape == (2, 2) and ((0 <= acc) & (acc <= 1)).all()
    assert res.curves("K=13").shape == (2, 2) and res.steps() == 2 * res.runs[0].steps_per_epoch
    steps = res.steps_to("K=13", 0.0)      # every curve reaches 0 at once
    assert (steps == res.runs[0].steps_per_epoch).all()
    assert np.isinf(res.steps_to("K=13", 1.01)).all() and (res.steps_to("K=13", 1.01, never=7) == 7).all()
    rows = res.table()
    assert [r["arm"] for r in rows] == ["K=3", "K=13"] and "d=12" in rows[0]
    cmp = res.compare_far("K=13", "K=3")
    assert cmp["gap"] == pytest.approx(res.far("K=13").mean() - res.far("K=3").mean())
    json.dumps(res.to_dict())  # JSON-ready
    both = lesson.merge(res, lesson.run(s, [lesson.arm("K=7 x2")], progress=False))
    assert both.arms() == ["K=3", "K=13", "K=7 x2"]
    with pytest.raises(ValueError, match="one and the same setup"):
        lesson.merge(res, lesson.Results(lesson.setup("fast"), []))
    images = lesson.erf_inputs(s)
    erfs = lesson.trained_erfs(res, images)
    assert [len(v) for v in erfs.values()] == [2, 2]
    maps = {k: lesson.mean_erf_map(v) for k, v in erfs.items()}
    assert all(m.shape == (32, 32) and np.isclose(m.sum(), 1) for m in maps.values())
    ratios = {k: float(np.mean([e.area_ratios()[0.5] for e in v])) for k, v in erfs.items()}
    lesson.plot_erf_overlays(maps, images[0], ratios)
    lesson.plot_accuracy(res)
    lesson.plot_curves(res, target=0.9)
    branch = lesson.branch_erfs(res.of("K=13")[0].model, images)
    lesson.plot_branch_maps(branch, lesson.far_share(branch, 4))
    with pytest.raises(ValueError, match="no runs"):
        res.accuracies("K=7")
    # the pairs task runs the same way
    p = lesson.table2_setup("fast", size=32, distances=(6, 12), n_train=64, n_test=40, epochs=1, seeds=(0,),
                            dims=(8, 16, 16, 16))
    assert p.task == "pairs" and lesson.run(p, arms[1:], progress=False).accuracies("K=13").shape == (1, 2)


def test_schedules_of_the_steps():
    s = lesson.setup("fast")
    low = lesson.low_data(s)
    assert low.n_train * 4 == s.n_train and low.epochs == 4 * s.epochs      # as many steps, fewer images
    t = lesson.table2_setup("fast")
    assert t.task == "pairs" and t.n_train < s.n_train                      # short enough not to saturate
    assert lesson.table2_setup("full").n_train > t.n_train


def test_miniature_verdicts_and_plan():
    assert miniature.plan("fast")[0] == ["shapes"] and len(miniature.plan("cpu")[0]) == 5
    assert len(miniature.plan("full")[2]) >= 3
    a, b = np.array([0.8, 0.82]), np.array([0.5, 0.52])
    assert miniature.verdict(a, b, True).startswith("agrees")
    assert miniature.verdict(a[:1], b[:1], True).startswith("points the paper's way")
    assert miniature.verdict(a, b, False).startswith("does not agree")      # an error: lower is better
    runs = [{"recipe": "weather", "lk_size": K, "seed": 0, "test": v, "trivial": 0.45, "deploy_check": {},
             "mode": "fast", "wall_s": 1.0} for K, v in ((13, 0.38), (3, 0.39))]
    rows, lines = miniature.table(runs, (13, 3), "fast")
    assert rows[0]["K=13"] == "0.380" and "points the paper's way" in lines[0]
    assert all(miniature.beats_trivial(r) for r in runs)
    miniature.plot(runs, (13, 3), "fast")


@pytest.mark.parametrize("override, message", [
    ({"size": 70}, "size must be a multiple of 16"), ({"n_train": 0}, "n_train must be an integer >= 1"),
    ({"distances": (50,)}, "distances must be integers from 1 to"), ({"seeds": ()}, "seeds must name"),
    ({"lr": -1.0}, "lr must be a finite number > 0"), ({"epochs": 2.5}, "epochs must be an integer"),
    ({"stages": 5}, "stages must be an integer in"), ({"task": "count"}, "task must be one of"),
])
def test_a_setup_checks_its_fields(override, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lesson.setup("fast", **override)
