"""The training engine: `fit` a model, `evaluate` it, save and resume runs.

One loop serves every modality. Classification (image, audio, video, point cloud) trains with
cross-entropy and reports accuracy; regression/forecasting (time series) trains with MSE and
reports MSE and MAE. A front-end + backbone such as `nn.Sequential(frontend, backbone)` is just a
model to fit.

The recipe is the paper's ImageNet recipe in miniature (AdamW, weight decay 0.05, warmup then
cosine, label smoothing 0.1), plus what small runs need: per-step schedule, no weight decay on
norms, biases and scales, optional mixup, gradient clipping, and mixed precision on CUDA. At the
end a UniRepLKNet is reparameterized into its deploy structure, checked to predict the same, and saved.

Checkpoints and deploy files keep the weights under "model", so `unirep_lite.load_checkpoint(model,
path)` loads either into a fresh model (create it with deploy=True for the deploy file).

Resuming is exact: a checkpoint holds the model, optimizer, scheduler, grad scaler, epoch, step,
history and every random number generator, and the shuffling of each epoch is a function of
(seed, epoch). So 2 epochs in one go and 1 epoch + resume + 1 epoch give equal parameters.

One idea per module: `config` (TrainConfig), `amp` (the mixed precision policy), `evaluation`
(losses, label checks, `evaluate`), `step` (one training step: `prepare`, `train_step`), `loop`
(`fit`, the non-finite rollback, resume), `deploy` (reparameterize and check), `history` (History,
FitResult and their plot), `distributed` (several processes under torchrun: `start`, `stop`, the
collectives). Batching lives in `unirep_lite.batches`.

Under torchrun the same `fit` trains with DistributedDataParallel; the entry joins the processes:

    launch = unirep_lite.env.torchrun()          # None when not started by torchrun
    device = distributed.start(launch) if launch else unirep_lite.env.default_device()
    try:
        result = fit(model, train, val, TrainConfig(device=str(device), ...))
    finally:
        distributed.stop()
"""
from ..batches import make_batches, make_loader
from ..checkpoint import TRAIN_FORMAT as CHECKPOINT_FORMAT  # the name this module has always exported
from .amp import autocast, autocast_dtype
from .config import AMP_MODES, TASKS, TrainConfig
from .deploy import check_deploy
from .evaluation import evaluate, predict, regression_metrics, task_loss
from .history import FitResult, History
from .loop import fit
from .step import StepState, lr_at, mixup, prepare, train_step

__all__ = ["AMP_MODES", "CHECKPOINT_FORMAT", "TASKS", "FitResult", "History", "StepState", "TrainConfig",
           "autocast", "autocast_dtype", "check_deploy", "evaluate", "fit", "lr_at", "make_batches",
           "make_loader", "mixup", "predict", "prepare", "regression_metrics", "task_loss", "train_step"]
