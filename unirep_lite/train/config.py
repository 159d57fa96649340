"""TrainConfig: every setting of a run, checked when it is made."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

from .. import checks

TASKS = ("classification", "regression")
AMP_MODES = ("auto", "bf16", "fp16", "off")

# Config fields that shape the numbers of a run; a resume must keep them, or it is another run.
RUN_FIELDS = ("epochs", "batch_size", "lr", "min_lr", "weight_decay", "warmup_fraction",
              "label_smoothing", "mixup_alpha", "grad_clip", "task", "seed")


@dataclass
class TrainConfig:
    """Everything `fit` needs to know, with defaults that suit the course's small models.

    lr is for AdamW at batch 64 (the paper's 4e-3 is for batch 4096); drop path is a model option
    (`create_model(..., drop_path_rate=...)`), not a training one. Under torchrun batch_size is the
    global batch, shared by the processes (see `train.distributed`).
    """
    epochs: int = 10
    batch_size: int = 64             # used when fit builds the DataLoaders itself
    lr: float = 1e-3                 # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-6             # where the cosine ends
    weight_decay: float = 0.05       # AdamW; not applied to 1-D parameters (norms, biases, scales)
    warmup_fraction: float = 0.05    # share of all steps spent in the linear warmup
    label_smoothing: float = 0.1     # classification only
    mixup_alpha: float = 0.0         # 0 = off; classification only
    grad_clip: Optional[float] = 1.0  # max global gradient norm; None = no clipping
    task: str = "classification"     # or "regression"
    amp: str = "auto"                # "auto" (CUDA: bf16 if supported, else fp16; elsewhere off), "bf16", "fp16", "off"
    channels_last: bool = False      # memory layout for 4-D inputs; can be faster on GPUs
    seed: int = 0
    device: Optional[str] = None     # None = the hardware's: cuda, then mps, then cpu
    num_workers: int = 0             # for DataLoaders that fit builds
    data_on_device: bool = True      # fixed splits live on the training device as tensors (see `batches`)
    progress: bool = True            # tqdm bar with live loss and metric
    checkpoint_path: Optional[str] = None  # saved (atomically) after every epoch when set
    reparameterize: Optional[bool] = None  # None = yes for UniRepLKNet models (or a given fn)
    deploy_path: Optional[str] = None      # None = "<checkpoint stem>.deploy.pt" if checkpointing
    overwrite: bool = False                # replace an existing checkpoint/deploy file (else resume_from it)
    sync_batchnorm: bool = True            # on several GPUs (torchrun): BatchNorm statistics of the global batch

    def __post_init__(self):
        for name in ("lr", "min_lr", "weight_decay", "warmup_fraction", "label_smoothing", "mixup_alpha"):
            checks.number(name, getattr(self, name))
        if self.grad_clip is not None:
            checks.number("grad_clip", self.grad_clip)
        checks.positive_int("epochs", self.epochs)
        checks.positive_int("batch_size", self.batch_size)
        checks.integer("seed", self.seed, 0, 2**32 - 1)
        checks.integer("num_workers", self.num_workers, 0)
        for name in ("channels_last", "data_on_device", "progress", "overwrite", "sync_batchnorm"):
            checks.boolean(name, getattr(self, name))
        if self.reparameterize is not None and not isinstance(self.reparameterize, bool):
            raise TypeError(f"reparameterize must be None, True or False, got {self.reparameterize!r}")
        for name in ("checkpoint_path", "deploy_path"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (str, os.PathLike)) or str(value) == ""):
                raise TypeError(f"{name} must be None or a file path, got {value!r}")
        if self.device is not None:
            if not isinstance(self.device, (str, torch.device)):
                raise TypeError(f"device must be None, a device name such as 'cpu' or a torch.device, "
                                f"got {self.device!r}")
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device must be None or a torch device such as 'cpu', 'cuda', 'cuda:1' or "
                                 f"'mps', got {self.device!r}") from None
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"expected 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0 (0 = off), got {self.mixup_alpha}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.task == "regression" and self.mixup_alpha > 0:
            raise ValueError("mixup is for classification; set mixup_alpha=0 for regression")
