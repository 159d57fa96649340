"""fit under torchrun: two CPU processes (gloo) train as one process does, write one checkpoint,
resume exactly, and stop with a clear message when one of them dies.

This file is also the worker that the processes run (`python tests/test_distributed.py MODE OUT`),
started by `python -m torch.distributed.run` (= torchrun) or, to watch a single survivor, by hand
with the variables torchrun sets.

Tolerance: two processes compute each step's loss and gradient as two part-batch means combined
(and DDP sums the gradients of the two in another order), so float32 rounding differs from one
process: measured, the losses of 15 AdamW steps by at most 1.2e-7 and the weights by 6e-8; the
tests allow 1e-5 (absolute, on losses ~1 and weights ~0.1-1). A model whose samples interact
(BatchNorm without SyncBatchNorm, which torch has only on GPUs) or that draws random numbers
trains differently on two processes by design, so the comparison uses a GroupNorm net without
dropout; the UniRepLKNet with drop path is for exact resume, where the same processes must repeat
themselves bit for bit.
"""
import datetime
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5
DIE_AT_STEP = 6  # process 1 dies at the first step of epoch 2 (5 steps an epoch)


class Tiny(nn.Module):
    """conv -> GroupNorm -> pool -> linear: each sample's output depends on that sample alone."""

    def __init__(self, die_at=None):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.norm, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.Linear(8, 3)
        self.die_at, self.steps = die_at, 0

    def forward(self, x):
        if self.training and self.die_at is not None:
            self.steps += 1
            if self.steps == self.die_at:
                os._exit(3)  # a crash: no cleanup, no message
        return self.fc(self.norm(self.conv(x)).relu().mean((2, 3)))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float(), y


TRAIN, VAL = data(48, 0), data(21, 1)  # 21: the processes' parts of the validation split differ


def config(**kw):
    from unirep_lite.train import TrainConfig

    # batch 9 of 48 samples: 5 steps an epoch, each split 5 + 4 over two processes
    return TrainConfig(**{**dict(epochs=3, batch_size=9, lr=1e-2, device="cpu", progress=False), **kw})


def unireplknet():
    import unirep_lite

    torch.manual_seed(0)
    return unirep_lite.create_model("unireplknet_a", num_classes=3, in_chans=1, depths=(1, 1, 1, 1),
                                    dims=(8, 16, 24, 32), lk_size=7, drop_path_rate=0.2)


_g = torch.Generator().manual_seed(2)
IMAGES = torch.randn(16, 1, 32, 32, generator=_g), torch.arange(16) % 3
IMAGES_VAL = torch.randn(6, 1, 32, 32, generator=_g), torch.arange(6) % 3


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- the worker

def worker(mode: str, out: Path) -> None:
    from unirep_lite import env
    from unirep_lite.train import distributed, evaluate, fit

    torch.set_num_threads(1)
    device = distributed.start(env.torchrun(), "cpu", timeout=datetime.timedelta(seconds=30))
    rank = distributed.World.current().rank
    try:
        if mode == "die":
            fit(Tiny(die_at=DIE_AT_STEP if rank == 1 else None), TRAIN, VAL,
                config(checkpoint_path=str(out / "run.pt")))
            return
        got = {}
        r = fit(Tiny(), TRAIN, VAL, config(checkpoint_path=str(out / "tiny.pt")))
        got["tiny"] = (r.history, weights(r.model), evaluate(r.model, VAL, device=device))
        r = fit(Tiny(), TRAIN, VAL, config(data_on_device=False))  # the DataLoader path
        got["loader"] = (r.history, weights(r.model))
        r = fit(unireplknet(), IMAGES, IMAGES_VAL, config(batch_size=8, checkpoint_path=str(out / "full.pt")))
        got["full"] = (r.history, weights(r.model))
        fit(unireplknet(), IMAGES, IMAGES_VAL, config(batch_size=8, checkpoint_path=str(out / "half.pt")),
            stop_after=2)
        r = fit(unireplknet(), IMAGES, IMAGES_VAL, config(batch_size=8, checkpoint_path=str(out / "half.pt")),
                resume_from=str(out / "half.pt"))
        got["resumed"] = (r.history, weights(r.model))
        torch.save(got, out / f"rank{rank}.result")
    except distributed.ProcessLost as e:
        raise SystemExit(f"worker: error: {e}") from None
    finally:
        distributed.stop()


# ----------------------------------------------------------------------------- without processes

def test_the_parts_of_every_batch_make_the_global_batch():
    from torch.utils.data import TensorDataset

    from unirep_lite.batches import TensorBatches, make_batches, reseed_loader

    x, y = torch.arange(23.0).view(-1, 1), torch.arange(23)
    one = TensorBatches(x, y, 6, shuffle=True, seed=3, drop_last=True)
    for on_device in (True, False):
        parts = [make_batches(TensorDataset(x, y), 6, torch.device("cpu"), shuffle=True, seed=3, drop_last=True,
                              on_device=on_device, rank=r, world=2) for r in (0, 1)]
        for epoch in (0, 1):
            for loader in (one, *parts):
                reseed_loader(loader, 3, epoch)
            for (x1, _), (x0a, _), (x0b, _) in zip(one, *parts):
                assert torch.equal(torch.cat([x0a, x0b]), x1) and len(x0a) == len(x0b) == 3
    with pytest.raises(ValueError, match="a batch of 1 samples, fewer than the 2 processes"):
        TensorBatches(x[:1], y[:1], 6, rank=0, world=2)


def test_sync_batchnorm_is_undone_after_training():
    from unirep_lite.train import loop
    from unirep_lite.train.distributed import World

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(4)))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    restore = loop._sync_batchnorm(model, config(), torch.device("meta"), World(0, 2))  # as on GPUs
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 2
    model[1].running_mean = torch.ones(4)  # what DDP or .to() may do to a buffer
    restore()
    assert [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == bns
    assert torch.equal(bns[0].running_mean, torch.ones(4))
    assert loop._sync_batchnorm(model, config(), torch.device("cpu"), World(0, 2)) and not any(
        isinstance(m, nn.SyncBatchNorm) for m in model.modules())  # torch syncs on GPUs only


def test_torchrun_variables_are_read_and_checked():
    from unirep_lite import env

    launch = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
    assert env.torchrun({}) is None
    assert env.torchrun(launch) == {"rank": 1, "world_size": 2, "local_rank": 1, "master_addr": "node0",
                                    "master_port": 29500}
    for bad, message in (({"RANK": "2"}, "RANK must be in"), ({"MASTER_PORT": "x"}, "MASTER_PORT must be an"),
                         ({"MASTER_ADDR": ""}, "MASTER_ADDR is not set")):
        with pytest.raises(ValueError, match=message):
            env.torchrun({**launch, **bad})


# ----------------------------------------------------------------------------- two processes

def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """One torchrun launch of 2 processes; its folder holds what they wrote."""
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, "train", str(out)]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def one():
    """The same training in this one process."""
    from unirep_lite.train import fit

    with torch.random.fork_rng():
        r = fit(Tiny(), TRAIN, VAL, config())
    return r.history, weights(r.model)


def _close(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_processes_train_like_one(two, one):
    history, w = one
    for rank in (0, 1):
        h2, w2, _ = torch.load(two / f"rank{rank}.result", weights_only=False)["tiny"]
        assert len(h2.step_loss) == len(history.step_loss) == 15  # the global batch: 5 steps an epoch
        assert h2.step_lr == history.step_lr  # the same schedule
        assert max(abs(a - b) for a, b in zip(h2.step_loss, history.step_loss)) < TOL
        assert max(abs(a - b) for a, b in zip(h2.val_loss + h2.val_metric,
                                              history.val_loss + history.val_metric)) < TOL
        assert _close(w2, w) < TOL


def test_the_dataloader_path_shards_alike(two):
    got = torch.load(two / "rank0.result", weights_only=False)
    assert max(abs(a - b) for a, b in zip(got["loader"][0].step_loss, got["tiny"][0].step_loss)) < 1e-6


def test_evaluation_gathers_every_process(two, one):
    from unirep_lite.train import evaluate

    _, w = one
    model = Tiny()
    model.load_state_dict(w)
    alone = evaluate(model, VAL)
    for rank in (0, 1):
        both = torch.load(two / f"rank{rank}.result", weights_only=False)["tiny"][2]
        assert both["n"] == alone["n"] == 21
        assert abs(both["loss"] - alone["loss"]) < TOL and both["accuracy"] == alone["accuracy"]


def test_only_process_0_writes_files(two):
    assert sorted(p.name for p in two.iterdir()) == [
        "full.deploy.pt", "full.pt", "half.deploy.pt", "half.pt", "rank0.result", "rank1.result", "tiny.pt"]
    ckpt = torch.load(two / "tiny.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2


def test_resume_on_two_processes_is_exact(two):
    for rank in (0, 1):
        got = torch.load(two / f"rank{rank}.result", weights_only=False)
        (h_full, w_full), (h_res, w_res) = got["full"], got["resumed"]
        assert h_res.step_loss == h_full.step_loss  # drop path draws the same numbers on each process
        assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)


def test_a_lost_process_stops_the_survivor_with_a_resumable_checkpoint(tmp_path, one):
    """Started by hand (as on a node whose peer is elsewhere), the survivor says what happened."""
    with socket.socket() as s:  # a free port for process 0's store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, __file__, "die", str(tmp_path)], stderr=subprocess.PIPE, text=True,
                              env={**_env(), "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) for r in (0, 1)]
    try:
        errs = [p.communicate(timeout=120)[1] for p in procs]  # a hang fails here
    finally:
        for p in procs:
            p.kill()
    assert procs[1].returncode == 3  # the crash
    assert procs[0].returncode == 1, errs[0][-2000:]  # the survivor stops
    last = errs[0].strip().splitlines()[-1]
    assert "process 0 of 2: lost contact with another process while taking step 6" in last, last
    assert f"the checkpoint {tmp_path / 'run.pt'} holds epoch 1" in last and "resume_from=" in last
    _resume_alone(tmp_path / "run.pt", one)


def test_torchrun_stops_the_run_when_a_process_dies(tmp_path, one):
    """On one node torchrun ends the other processes itself and names the one that failed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, "die", str(tmp_path)]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert re.search(r"Root Cause[\s\S]*rank\s*: 1 \(local_rank: 1\)\s*exitcode\s*: 3", run.stderr), run.stderr[-2000:]
    _resume_alone(tmp_path / "run.pt", one)


def _resume_alone(path: Path, one):
    """The checkpoint of epoch 1 finishes the run on one process as if nothing had happened."""
    from unirep_lite.train import fit

    with torch.random.fork_rng():
        r = fit(Tiny(), TRAIN, VAL, config(checkpoint_path=str(path)), resume_from=str(path))
    assert r.history.epoch == [1, 2, 3]
    assert _close(weights(r.model), one[1]) < TOL


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))
