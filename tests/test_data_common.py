"""What every dataset module shares (unirep_lite.data.common): the split check and the .npy loader."""
import numpy as np
import pytest

from unirep_lite import data
from unirep_lite.data.common import check_split, load_npy


def test_check_split_names_the_valid_splits():
    assert check_split("val") == "val"
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val', 'test'\), got 'dev'"):
        check_split("dev")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\), got 'val'"):
        check_split("val", ("train", "test"))


@pytest.mark.parametrize("module", [data.images, data.audio, data.video, data.points, data.weather])
def test_every_offline_dataset_checks_its_split(module, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        module.load("dev", fast=True, root=tmp_path)   # before building anything
    assert not any(tmp_path.iterdir())


def test_load_npy_names_the_file_and_the_fix(tmp_path):
    np.save(tmp_path / "ok.npy", np.arange(3))
    assert load_npy(tmp_path / "ok.npy", mmap_mode="r").tolist() == [0, 1, 2]
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="bad.npy: not a readable .npy file.*build --force"):
        load_npy(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="bad.npy: not a readable .npy file.*my fix"):
        load_npy(tmp_path / "bad.npy", fix="my fix")
    with pytest.raises(FileNotFoundError):
        load_npy(tmp_path / "missing.npy")
