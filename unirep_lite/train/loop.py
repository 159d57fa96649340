"""The loop: `fit` a model epoch by epoch, roll a non-finite step back, checkpoint and resume."""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..batches import TensorBatches, batch_len, drop_ragged, make_batches, reseed_loader, split_batch, to_device
from ..checkpoint import rng_state, set_rng_state, load_training_state, save_training_state
from ..env import default_device, progress_bar, seed_everything
from ..model import reparameterize
from ..paths import check_output_path
from .config import RUN_FIELDS, TrainConfig
from .deploy import check_deploy, is_unireplknet, save_deploy
from .distributed import ProcessLost, World, collective, gather
from .evaluation import check_labels, evaluate, task_loss
from .history import FitResult, History
from .step import StepState, non_finite, prepare, train_step


def fit(model: nn.Module, train_data, val_data=None, config: Optional[TrainConfig] = None, *,
        resume_from=None, stop_after: Optional[int] = None,
        reparameterize_fn: Optional[Callable[[nn.Module], nn.Module]] = None) -> FitResult:
    """Train `model` on `train_data`, validating on `val_data` after every epoch.

    Data: DataLoaders, Datasets or (inputs, targets) tensor tuples; batches are (inputs, targets).
        Tensors and the course's datasets are kept on the training device and batched by indexing
        (`batches`; config.data_on_device=False for DataLoaders instead), same order, same result.
    resume_from: a checkpoint written by an earlier call with the same config; training continues
        after its last epoch and ends exactly where an uninterrupted run would.
    stop_after: end this call after that many epochs in total (the schedule still spans
        config.epochs); with config.checkpoint_path set, resume later, e.g. in a new Colab session.
    reparameterize_fn: turns the trained model into its deploy structure; default
        unirep_lite.reparameterize, used automatically for UniRepLKNet models.
    Seed (unirep_lite.env.seed_everything) before creating the model so its initial weights repeat;
    fit seeds everything else from config.seed.

    Under torchrun (a process group started, e.g. by `train.distributed.start`) every process calls
    fit alike: each trains a DistributedDataParallel copy on its part of every global batch of
    config.batch_size, so the steps, the schedule and (up to float rounding, for a model whose
    samples don't interact; BatchNorm does unless synchronised, see config.sync_batchnorm) the
    losses are those of one process; validation covers the whole split; only process 0 writes
    files and shows progress. A lost process ends fit with `ProcessLost` naming the checkpoint to
    resume from (on any number of processes).

    Returns a FitResult: .model (trained, in eval mode), .history (.plot() it), and for a finished
    run that was reparameterized .deploy_model and .deploy_check ({"n", "max_abs_diff", "agreement"}).

        result = fit(model, (x_train, y_train), (x_val, y_val), TrainConfig(epochs=5))
        result.history.plot()
    """
    cfg = config or TrainConfig()
    world = World.current()
    if stop_after is not None and (not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after must be an integer >= 1 (epochs in total), got {stop_after!r}")
    # None: the hardware's best device; the environment's choice (UNIREP_DEVICE) is the caller's to pass
    device = torch.device(cfg.device) if cfg.device else default_device(environ={})
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config.device is {cfg.device!r} but no CUDA GPU is available; use None (automatic) or 'cpu'")
    if world.distributed and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this process's GPU (distributed.start)
    task = cfg.task
    ckpt_path, deploy_path = _check_outputs(cfg, resume_from)  # now, not after the first epoch
    _check_finite_model(model, "before training")
    seed_everything(world.seed(cfg.seed))

    train_loader = make_batches(train_data, cfg.batch_size, device, shuffle=True, seed=cfg.seed,
                                num_workers=cfg.num_workers, drop_last=drop_ragged(train_data, cfg.batch_size),
                                on_device=cfg.data_on_device, what="training data",
                                rank=world.rank, world=world.size)
    val_loader = None if val_data is None else make_batches(val_data, cfg.batch_size, device,
                                                            num_workers=cfg.num_workers, on_device=cfg.data_on_device,
                                                            what="validation data")
    if val_loader is not None and _length(val_loader) == 0:
        raise ValueError("the validation data gives no batches; pass val_data=None to train without validation")
    try:
        steps_per_epoch = len(train_loader)
    except TypeError:
        raise ValueError("fit needs training data with a length (a map-style Dataset or a sized loader)")
    if steps_per_epoch == 0:
        raise ValueError("the training data gives no batches (is it empty, or smaller than batch_size "
                         "with drop_last?)")
    state = prepare(model, cfg, cfg.epochs * steps_per_epoch, device, world)
    if val_loader is not None:  # the training data is checked by the first step, before its update
        _check_data(model, val_loader, task, device, cfg, "validation data")
    history = History(metric_name="accuracy" if task == "classification" else "mae")
    start_epoch, step = 0, 0

    if resume_from is not None:
        saved = load_training_state(
            resume_from, model=model, optimizer=state.optimizer, scheduler=state.scheduler,
            scaler=state.scaler, check=lambda ckpt: _check_same_run(ckpt, cfg, steps_per_epoch, resume_from))
        start_epoch, step = saved["epoch"], saved["step"]
        history = History.from_dict(saved["history"])
        if len(saved.get("rng_ranks") or ()) == world.size > 1:  # each process its own random numbers
            set_rng_state(saved["rng_ranks"][world.rank])

    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    bar = _progress(cfg.progress and world.main, total=end_epoch * steps_per_epoch, initial=step)
    saved_epoch = start_epoch if resume_from is not None and ckpt_path is not None and \
        Path(resume_from).resolve() == ckpt_path.resolve() else None  # the epoch ckpt_path holds
    restore_batchnorm = _sync_batchnorm(model, cfg, device, world)
    try:
        trained = model  # what takes the steps: the model, or on several processes its DDP copy
        if world.distributed:
            with collective("starting"):  # DDP broadcasts process 0's weights: every copy starts equal
                trained = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        for epoch in range(start_epoch, end_epoch):
            t0 = time.perf_counter()
            reseed_loader(train_loader, cfg.seed, epoch)
            train_loss = _train_epoch(model, trained, train_loader, state, device, history, bar, epoch)
            step += steps_per_epoch
            val_loss = val_metric = float("nan")
            if val_loader is not None:
                r = evaluate(model, val_loader, task, device=device, amp=cfg.amp, channels_last=cfg.channels_last)
                val_loss, val_metric = r["loss"], r[history.metric_name]
            history.epoch.append(epoch + 1)
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            history.val_metric.append(val_metric)
            history.lr.append(state.lr)
            history.epoch_time.append(time.perf_counter() - t0)
            if bar is not None:
                bar.set_postfix(_postfix(epoch, cfg.epochs, history.step_loss[-1], history))
            if ckpt_path is not None:
                ranks = {}
                if world.distributed:  # every process's random numbers, for an exact resume
                    with collective("saving the checkpoint"):
                        ranks = {"rng_ranks": gather(rng_state()), "world_size": world.size}
                if world.main:
                    save_training_state(ckpt_path, model=model, optimizer=state.optimizer,
                                        scheduler=state.scheduler, scaler=state.scaler, epoch=epoch + 1, step=step,
                                        steps_per_epoch=steps_per_epoch, history=history.to_dict(),
                                        config=dataclasses.asdict(cfg), **ranks)
                saved_epoch = epoch + 1
    except ProcessLost as e:
        where = (f"the checkpoint {ckpt_path} holds epoch {saved_epoch}: run again with resume_from="
                 f"{str(ckpt_path)!r} to continue" if saved_epoch else
                 "no checkpoint was written (set TrainConfig.checkpoint_path to be able to resume)")
        raise ProcessLost(f"process {world.rank} of {world.size}: {e}; {where}") from e
    finally:
        restore_batchnorm()
        if bar is not None:
            bar.close()

    model.eval()
    result = FitResult(model=model, history=history, checkpoint_path=ckpt_path,
                       finished=(history.epoch[-1] if history.epoch else 0) >= cfg.epochs)
    want = result.finished and (cfg.reparameterize if cfg.reparameterize is not None else (
        reparameterize_fn is not None or is_unireplknet(model)))
    if want:
        check_data = val_loader if val_loader is not None else train_loader  # any data will do
        result.deploy_model, result.deploy_check = check_deploy(model, reparameterize_fn or reparameterize,
                                                                check_data, task, device)
        if deploy_path is not None:
            if world.main:
                save_deploy(result.deploy_model, deploy_path)
            result.deploy_path = deploy_path
    if world.distributed:
        with collective("finishing"):  # every process returns once process 0's files are written (a
            # resume that follows must not read the checkpoint before the last epoch is in it)
            torch.distributed.barrier()
    return result


def _sync_batchnorm(model: nn.Module, cfg: TrainConfig, device: torch.device, world: World) -> Callable[[], None]:
    """On several GPUs and if config.sync_batchnorm, make every BatchNorm of `model` compute its
    statistics over the global batch (SyncBatchNorm, same tensors) for training; returns what puts
    the BatchNorms back. torch synchronises BatchNorm on GPUs only: on CPUs each process keeps its own."""
    swapped = []
    if world.distributed and cfg.sync_batchnorm and device.type != "cpu":
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                    setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
                    swapped.append((parent, name, child))

    def restore():
        for parent, name, bn in swapped:
            sync = getattr(parent, name)
            for key, t in list(sync.named_parameters(recurse=False)) + list(sync.named_buffers(recurse=False)):
                setattr(bn, key, t)  # what training left (prepare and DDP may have replaced tensors)
            setattr(parent, name, bn.train(sync.training))
        swapped.clear()
    return restore


def _check_outputs(cfg: TrainConfig, resume_from) -> tuple[Optional[Path], Optional[Path]]:
    """The checkpoint and deploy paths, checked before any work: writable, and an existing file
    only replaced when this run resumes from it or `overwrite=True` says so."""
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    deploy = Path(cfg.deploy_path) if cfg.deploy_path else (
        ckpt.with_name(ckpt.stem + ".deploy.pt") if ckpt else None)
    if ckpt is not None and deploy is not None and ckpt.resolve() == deploy.resolve():
        raise ValueError(f"config.deploy_path and config.checkpoint_path must be two files, got {deploy} for both "
                         "(the deploy weights would replace the resume point)")
    if resume_from is not None and not Path(resume_from).is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {resume_from}")
    # the one file this run may replace without overwrite=True: its own resume point
    resuming_itself = ckpt is not None and resume_from is not None and Path(resume_from).resolve() == ckpt.resolve()
    for what, path in (("checkpoint_path", ckpt), ("deploy_path", deploy)):
        if path is None:
            continue
        check_output_path(path, f"config.{what}", make_parents=True)
        if path.exists() and not cfg.overwrite and not resuming_itself:
            hint = (f"pass resume_from={str(ckpt or path)!r} to continue that run, " if resume_from is None else
                    f"this run resumes from {resume_from}, not from it: name another file, ")
            raise FileExistsError(f"config.{what} {path} already exists (another run's); {hint}or "
                                  "TrainConfig(overwrite=True) to replace it")
    return ckpt, deploy


def _check_data(model: nn.Module, loader, task: str, device, cfg: TrainConfig, what: str) -> None:
    """One forward pass on the first batch of `loader` (and, where the labels are at hand, a check of
    every label) before training starts: a wrong channel count or a bad label is found now, not after
    an epoch of work."""
    x, y = split_batch(next(iter(loader)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(to_device(x, device, cfg.channels_last))
        task_loss(out, y.to(out.device), task)
        if task == "classification" and isinstance(loader, TensorBatches):  # every label, at no cost
            check_labels(loader.y, out.shape[1])
    except (ValueError, RuntimeError) as e:  # torch's shape errors are RuntimeErrors
        raise ValueError(f"the {what} does not fit the model: {e}") from None
    finally:
        model.train(was_training)


def _check_finite_model(model: nn.Module, when: str) -> None:
    bad = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise FloatingPointError(f"the model has NaN/inf values {when}: {', '.join(bad[:5])}"
                                 + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))


def _length(loader) -> Optional[int]:
    try:
        return len(loader)
    except TypeError:
        return None


def _train_epoch(model, trained, loader, state: StepState, device, history: History, bar, epoch: int) -> float:
    """One pass over the training data, one optimizer step per batch; returns the mean loss.
    `trained` is what takes the steps: `model` itself, or its DistributedDataParallel copy."""
    cfg = state.config
    model.train()
    loss_sum, n_seen = 0.0, 0
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    tensors = list(model.parameters()) + list(model.buffers())  # BatchNorm statistics and counters too
    floats = [t for t in tensors if t.is_floating_point()]
    last_good = [t.detach().clone() for t in tensors]  # the model after the last good step
    for batch in loader:
        x, y = split_batch(batch)
        if has_bn and batch_len(x) < 2:
            raise ValueError(f"a training batch of {batch_len(x)} sample (step {len(history.step_loss) + 1}): "
                             "BatchNorm in training needs at least 2; use more data, another batch_size, "
                             "or a loader with drop_last=True")
        x, y = to_device(x, device, cfg.channels_last), y.to(device, non_blocking=True)
        with torch.no_grad():
            torch._foreach_copy_(last_good, tensors)
        step_no, lr = len(history.step_loss) + 1, state.lr
        try:
            loss_value = train_step(trained, x, y, state, step=step_no, epoch=epoch)
        except BaseException:  # nothing of a failed step stays in the model: back to the last good step
            with torch.no_grad():
                torch._foreach_copy_(tensors, last_good)
            raise
        with torch.no_grad():
            finite = bool(torch.isfinite(torch.stack(torch._foreach_norm(floats, float("inf")))).all())
        if not finite:
            with torch.no_grad():
                torch._foreach_copy_(tensors, last_good)
            raise non_finite("the parameters became NaN/inf after the update", step_no, epoch)
        history.step_loss.append(loss_value)
        history.step_lr.append(lr)
        bs = state.samples  # the global batch's
        loss_sum, n_seen = loss_sum + loss_value * bs, n_seen + bs
        if bar is not None:
            bar.update(1)
            bar.set_postfix(_postfix(epoch, cfg.epochs, loss_value, history), refresh=False)
    return loss_sum / n_seen


def _check_same_run(ckpt: dict, cfg: TrainConfig, steps_per_epoch: int, path) -> None:
    saved = ckpt.get("config", {})
    now = dataclasses.asdict(cfg)
    diffs = [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in RUN_FIELDS if saved.get(k) != now[k]]
    if ckpt.get("steps_per_epoch") != steps_per_epoch:
        diffs.append(f"steps per epoch: saved {ckpt.get('steps_per_epoch')}, now {steps_per_epoch} "
                     "(different training data or batch size)")
    if diffs:
        raise ValueError(f"cannot resume from {path}: the run's settings differ ({'; '.join(diffs)}). "
                         "Resume with the same TrainConfig, or start a new run from its weights "
                         "with unirep_lite.load_checkpoint(model, path).")


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    return progress_bar(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _postfix(epoch: int, epochs: int, loss: float, history: History) -> dict:
    post = {"epoch": f"{epoch + 1}/{epochs}", "loss": f"{loss:.4f}"}
    if history.val_metric and not math.isnan(history.val_metric[-1]):
        post[f"val_{history.metric_name}"] = f"{history.val_metric[-1]:.4f}"
    return post
