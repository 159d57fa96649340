"""The benchmark's command line: bad arguments are refused before any work, and a run in which
every row failed is a failure."""
import pytest
import torch


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
