"""TrainConfig refuses settings that cannot make a run, naming the field."""
import pytest

from unirep_lite.train import TrainConfig


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(task="segmentation"), dict(amp="fp8"),
                                 dict(lr=1e-3, min_lr=1e-2), dict(label_smoothing=1.0),
                                 dict(warmup_fraction=1.0), dict(grad_clip=0.0),
                                 dict(task="regression", mixup_alpha=0.2)])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_non_finite_numbers_in_the_config():
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr must be a finite number"):
            TrainConfig(lr=bad)
    with pytest.raises(ValueError, match="weight_decay must be a finite number"):
        TrainConfig(weight_decay=float("nan"))


def test_sync_batchnorm_is_a_boolean():
    assert TrainConfig().sync_batchnorm is True  # several GPUs normalise over the global batch by default
    with pytest.raises(TypeError, match="sync_batchnorm must be True or False"):
        TrainConfig(sync_batchnorm="yes")
