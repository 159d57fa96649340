"""Bad inputs and faults outside training and data: the ERF tools, the widgets and the command lines
answer with a clear error that names what was expected, or a documented refusal; nothing silently
wrong. (Training, checkpoints, exports and the datasets are tested beside their modules.)
"""
import time
import warnings

import numpy as np
import pytest
import torch


# ------------------------------------------------------------ ERF and widgets

def _tiny_unireplknet():
    import unirep_lite

    return unirep_lite.create_model("unireplknet_a", num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))


def test_compute_erf_bad_images(one_thread):
    from unirep_lite import erf

    model = _tiny_unireplknet()
    for bad, message in ((torch.zeros(0, 3, 32, 32), "at least one image"),
                         (torch.zeros(3, 32, 32), r"shape \(N, C, H, W\)"),
                         (torch.full((1, 3, 32, 32), float("nan")), "NaN or inf")):
        with pytest.raises(ValueError, match=message):
            erf.compute_erf(model, bad, progress=False)


@pytest.mark.parametrize("merge", [True, False])
def test_compute_erf_leaves_callers_model_as_it_was(one_thread, merge):
    from unirep_lite import erf

    model = _tiny_unireplknet().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = erf.compute_erf(model, torch.randn(2, 3, 32, 32), stage=1, progress=False, merge=merge)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # BN statistics too
    assert np.isfinite(e.raw).all() and e.raw.sum() > 0


def test_load_images_not_an_image(tmp_path):
    from unirep_lite import erf

    (tmp_path / "fake.png").write_text("this is text")
    with pytest.raises(ValueError, match=r"fake.png: not a readable image \(UnidentifiedImageError"):
        erf.load_images(tmp_path, n=1, resolution=16)


def test_widgets_show_errors_instead_of_raising(tmp_path):
    from unirep_lite import widgets

    (tmp_path / "fake.png").write_text("this is text")
    ex = widgets.ERFExplorer(source=str(tmp_path), progress=False)
    ui = ex.widget(resolutions=(32,), n_images=1)  # computes at once: shows the error, raises nothing
    assert "not a readable image" in ui.controls["message"].value

    start = time.perf_counter()
    ui = widgets.kernel_explorer(13)
    ui.controls["K"].value = 99999
    assert f"K must be an odd integer from 1 to {widgets.MAX_K}" in ui.controls["message"].value
    assert time.perf_counter() - start < 60  # bounded: no 40 GB kernel was allocated
    with pytest.raises(ValueError, match="K must be an odd integer"):
        widgets.render_block(99999, (5,), (1,))


# ------------------------------------------------------------ the command lines

@pytest.mark.parametrize("argv, message", [
    (["--device", "gpu"], "--device: expected cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--train-res", "abc"], "--train-res: expected a comma list of resolutions"),
    (["--train-res", "0"], "--train-res: expected positive resolutions"),
    (["--infer-batch", "0"], "--infer-batch: expected a positive integer"),
    (["--json", "/missing/x.json"], "the folder /missing does not exist"),
])
def test_bench_cli_rejects_bad_arguments_first(argv, message, capsys):
    from unirep_lite import bench

    with pytest.raises(SystemExit) as exit_:
        bench.parse(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bench_cli_no_device_backend(capsys):
    from unirep_lite import bench

    if not torch.backends.mps.is_available():
        with pytest.raises(SystemExit) as exit_:
            bench.parse(["--device", "mps"])
        assert exit_.value.code == 2 and "MPS backend is not available" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.parse(["--device", "cuda"])


def test_bench_every_row_failed_is_a_failure(monkeypatch, tmp_path, capsys):
    from unirep_lite import bench

    def failing(args):
        rows = bench.plan(args)
        for r in rows:
            r.error = "RuntimeError: no such device"
        return rows

    monkeypatch.setattr(bench, "run", failing)
    with pytest.raises(SystemExit, match="every benchmark failed on cpu"):
        bench.main(["--quick", "--json", str(tmp_path / "rows.json")])
    assert not (tmp_path / "rows.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["digits", "--lk-size", "4"], "--lk-size 4: block kernel size must be a positive odd integer"),
    (["digits", "--lk-size", "0"], "--lk-size 0: block kernel size must be a positive odd integer"),
    (["digits", "--lk-size", "19"], "--lk-size 19: no default Dilated Reparam branches for K=19"),
    (["digits", "--variant", "bogus"], "--variant: expected one of unireplknet_a"),
    (["digits", "--epochs", "0"], "--epochs: expected a positive number of epochs, got 0"),
    (["digits", "--json", "{tmp}"], "is a folder; expected the path of a file"),
    (["digits", "--json", "{tmp}/no/x.json"], "does not exist"),
])
def test_recipes_cli_rejects_bad_arguments_before_loading(argv, message, tmp_path, monkeypatch, capsys):
    from unirep_lite.recipes import __main__ as cli

    def must_not_run(*a, **k):
        raise AssertionError("the recipe started before its arguments were checked")

    monkeypatch.setattr(cli, "run", must_not_run)
    with pytest.raises(SystemExit) as exit_:
        cli.main([a.format(tmp=tmp_path) for a in argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
