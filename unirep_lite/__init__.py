"""unirep_lite: UniRepLKNet, its Dilated Reparam Block and the tools of the course, small and readable.

    import unirep_lite
    model = unirep_lite.create_model("unireplknet_a", num_classes=10, in_chans=1)
    deploy = unirep_lite.reparameterize(model.eval())  # same outputs, one conv per block
"""
from .blocks import GRN, DilatedReparamBlock, SEBlock, UniRepLKNetBlock
from .checkpoint import create_model, load_checkpoint, save_checkpoint
from .model import (
    VARIANTS,
    UniRepLKNet,
    list_models,
    reparameterize,
    set_fast_train,
    set_mode,
    set_reference,
)
from .stats import count_macs, count_params
from .train import TrainConfig, evaluate, fit

__version__ = "0.1.0"
__all__ = [
    "create_model", "reparameterize", "list_models", "load_checkpoint", "save_checkpoint",
    "count_params", "count_macs", "UniRepLKNet", "UniRepLKNetBlock", "DilatedReparamBlock",
    "SEBlock", "GRN", "VARIANTS", "TrainConfig", "fit", "evaluate", "set_mode", "set_fast_train",
    "set_reference",
]

from . import timm_models as _timm_models  # noqa: E402  timm.create_model("unireplknet_a") works after import

_timm_models.register()
