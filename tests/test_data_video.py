"""Video: synthetic actions (determinism, appearance-disjoint splits, motion known answers), the
Kinetics/UCF-style mp4 folder loader (files written here with PyAV), and the frame-grid front-end."""
import numpy as np
import pytest
import torch

from unirep_lite.data import cache, video
from unirep_lite.frontends.video import (VideoFrontend, authors_reshape, grid_shape, tile_frames,
                                         untile_frames)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    video.build(fast=True, root=root)
    return root


def test_actions_splits_shapes(video_root):
    for split in video.SPLITS:
        ds = video.load(split, fast=True, root=video_root)
        x, y = ds[0]
        assert ds.classes == video.CLASSES
        assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
        per_class = video._params(True)["per_class"][split]
        assert np.bincount(ds.labels).tolist() == [per_class] * len(video.CLASSES)


def test_actions_appearance_does_not_leak(video_root):
    split_of = video.appearance_split()
    seen = {}
    for split in video.SPLITS:
        ds = video.load(split, fast=True, root=video_root)
        assert set(ds.shapes) <= set(split_of[split]["shapes"])
        assert set(ds.hue_bands.tolist()) <= set(split_of[split]["hue_bands"])
        seen[split] = (set(ds.shapes), set(ds.hue_bands.tolist()))
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not seen[a][0] & seen[b][0], f"shapes shared by {a} and {b}"
        assert not seen[a][1] & seen[b][1], f"colours shared by {a} and {b}"


def test_actions_deterministic(video_root, tmp_path):
    again = video.build(fast=True, root=tmp_path, force=True)
    assert cache.dataset_checksum(again) == cache.dataset_checksum(video_root / "video-fast")


def _centre_and_area(clip):
    """Centroid x, y and area of the shape in each frame (pixels far from the background grey)."""
    grey = clip.astype(float).mean(1)
    colourful = np.abs(clip.astype(float) - grey[:, None]).max(1) > 40
    ys, xs = np.mgrid[:clip.shape[2], :clip.shape[3]]
    area = colourful.sum((1, 2))
    return (colourful * xs).sum((1, 2)) / area, (colourful * ys).sum((1, 2)) / area, area


@pytest.mark.parametrize("action", video.CLASSES)
def test_render_known_motion(action):
    rng = np.random.default_rng(1)
    clip = video.render_clip("bar", action, hue=0.0, rng=rng)  # saturated red on grey
    x, y, area = _centre_and_area(clip)
    dx, dy, grew = x[-1] - x[0], y[-1] - y[0], area[-1] / area[0]
    expected = {"move_right": dx > 8, "move_left": dx < -8, "move_down": dy > 8, "move_up": dy < -8,
                "grow": grew > 2, "shrink": grew < 0.5}
    if action in expected:
        assert expected[action], (dx, dy, grew)
    else:  # rotation: the shape turns in place, its size unchanged
        assert abs(dx) < 1.5 and abs(dy) < 1.5 and 0.8 < grew < 1.25


def test_rotation_direction():
    """On screen (y down) clockwise turns the bar's right end downwards."""
    for action, sign in (("rotate_clockwise", 1), ("rotate_anticlockwise", -1)):
        cx, cy, angle, radius = video.motion_path(action, 16, np.random.default_rng(0))
        assert sign * (angle[-1] - angle[0]) > 0
        tip_y = np.sin(angle) * radius + cy  # where the outline's point (1, 0) goes
        assert sign * (tip_y[1] - tip_y[0]) > 0 or abs(np.cos(angle[0])) < 0.2


# ---------------------------------------------------------------- mp4 folder (Kinetics/UCF layout)

@pytest.fixture
def ucf(tmp_path, write_mp4):
    root = tmp_path / "ucf"
    write_mp4(root / "Walk" / "v_Walk_g01.mp4", 20)
    write_mp4(root / "Walk" / "v_Walk_g02.mp4", 8)  # fewer frames than asked: frames repeat
    write_mp4(root / "Run" / "v_Run_g01.mp4", 20, level=lambda i: 200 - 10 * i)
    (root / "classInd.txt").write_text("1 Walk\n2 Run\n")
    return root


def test_read_video_samples_uniformly(ucf):
    clip = video.read_video(ucf / "Walk" / "v_Walk_g01.mp4", num_frames=4)
    assert clip.shape == (4, 3, 32, 48) and clip.dtype == torch.uint8
    brightness = clip.float().mean((1, 2, 3)).numpy()
    assert np.allclose(brightness, [0, 60, 130, 190], atol=6)  # frames 0, 6, 13, 19 of 20
    assert video.read_video(ucf / "Walk" / "v_Walk_g01.mp4", 16, size=24).shape == (16, 3, 24, 24)


def test_video_folder(ucf):
    ds = video.VideoFolder(ucf, num_frames=16, size=32)
    assert ds.classes == ["Walk", "Run"] and len(ds) == 3
    assert [r for r, _ in ds.files] == ["Run/v_Run_g01.mp4", "Walk/v_Walk_g01.mp4", "Walk/v_Walk_g02.mp4"]
    x, y = ds[0]
    assert x.shape == (16, 3, 32, 32) and y == 1 and 0 <= x.min() and x.max() <= 1
    assert x[0].mean() > x[-1].mean()  # Run gets darker over time
    short, _ = ds[2]
    assert short.shape == (16, 3, 32, 32)
    (ucf / "testlist01.txt").write_text("Walk/v_Walk_g02.mp4\n")
    only = video.VideoFolder(ucf, split_file=ucf / "testlist01.txt")
    assert [r for r, _ in only.files] == ["Walk/v_Walk_g02.mp4"]


def test_video_folder_bad_input(ucf, tmp_path):
    with pytest.raises(FileNotFoundError, match="Kinetics/UCF-style"):
        video.VideoFolder(tmp_path / "missing")
    (ucf / "classInd.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no label list"):
        video.VideoFolder(ucf)
    (ucf / "labels.txt").write_text("Walk\n")  # a subset of the classes: other folders are left out
    assert len(video.VideoFolder(ucf)) == 2
    (ucf / "trainlist.txt").write_text("Run/v_Run_g01.mp4 2\n")
    with pytest.raises(ValueError, match="'Run' is not in the label list"):
        video.VideoFolder(ucf, split_file=ucf / "trainlist.txt")


def test_corrupt_mp4_named(ucf):
    bad = ucf / "Walk" / "v_Walk_g03.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(ValueError, match="v_Walk_g03.mp4: cannot read video"):
        video.read_video(bad)
    ds = video.VideoFolder(ucf)
    with pytest.raises(ValueError, match="v_Walk_g03.mp4"):
        ds[[r for r, _ in ds.files].index("Walk/v_Walk_g03.mp4")]
    with pytest.warns(UserWarning, match="v_Walk_g03.mp4"):
        skipping = video.VideoFolder(ucf, on_error="skip")
    assert len(skipping) == 3 and len(skipping.skipped) == 1


# ---------------------------------------------------------------- front-end

def _numbered_frames(n=16, h=8, w=8):
    """Frame k is filled with the value k: where a pixel lands tells which frame it came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()


def test_grid_keeps_each_frame_whole():
    frames = torch.rand(16, 3, 8, 8)
    image = tile_frames(frames)
    assert image.shape == (3, 32, 32)
    for k in range(16):
        r, c = divmod(k, 4)
        assert torch.equal(image[:, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8], frames[k])
    assert torch.equal(untile_frames(image, (4, 4)), frames)
    batch = torch.rand(2, 16, 3, 8, 8)
    assert torch.equal(tile_frames(batch)[1], tile_frames(batch[1]))


def test_grid_versus_authors_reshape():
    frames = _numbered_frames()
    grid, reshaped = tile_frames(frames), authors_reshape(frames)
    assert grid.shape == reshaped.shape == (3, 32, 32)
    assert not torch.equal(grid, reshaped)
    # grid: the top-left 8 x 8 block is frame 0, the block to its right frame 1
    assert (grid[0, :8, :8] == 0).all() and (grid[0, :8, 8:16] == 1).all()
    # reshape: frame k fills 2 whole-width rows (its 8 rows cut into 4-row strips side by side)
    for k in range(16):
        assert (reshaped[0, 2 * k:2 * k + 2] == k).all()
    # ... so an output row is rows 0-3 of one frame placed next to each other
    texture = torch.rand(16, 3, 8, 8)
    assert torch.equal(authors_reshape(texture)[:, 0], texture[0, :, :4].reshape(3, 32))
    assert torch.equal(VideoFrontend("reshape")(frames.unsqueeze(0))[0], reshaped)


def test_video_frontend_shapes_and_errors():
    assert grid_shape(16) == (4, 4) and grid_shape(8) == (2, 4) and grid_shape(7) == (1, 7)
    assert VideoFrontend()(torch.rand(2, 16, 3, 32, 32)).shape == (2, 3, 128, 128)
    assert tile_frames(torch.rand(8, 3, 4, 4)).shape == (3, 8, 16)
    with pytest.raises(ValueError, match="N_F x C x h x w"):
        VideoFrontend()(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="square number of frames"):
        authors_reshape(torch.rand(8, 3, 4, 4))
    with pytest.raises(ValueError, match="does not hold"):
        tile_frames(torch.rand(16, 3, 4, 4), grid=(3, 5))
    with pytest.raises(ValueError, match="layout"):
        VideoFrontend("mosaic")


def test_video_frontend_feeds_the_backbone(video_root):
    import unirep_lite

    ds = video.load("val", fast=True, root=video_root, transform=VideoFrontend())
    x, _ = ds[0]
    assert x.shape == (3, 128, 128)
    model = unirep_lite.create_model("unireplknet_a", num_classes=len(ds.classes), in_chans=3).eval()
    with torch.no_grad():
        assert model(x.unsqueeze(0)).shape == (1, 8)


def test_corrupt_cached_array_named(tmp_path):
    for name in ("val_clips.npy", "val_labels.npy", "val_shapes.npy", "val_hue_bands.npy"):
        (tmp_path / name).write_bytes(b"\x93NUMPY truncated")
    with pytest.raises(ValueError, match="val_clips.npy: not a readable .npy file.*build --force"):
        video.SyntheticActions(tmp_path, "val")


def test_video_folder_listed_but_missing_file(tmp_path, write_mp4):
    write_mp4(tmp_path / "Walk" / "a.mp4", 4, size=(16, 16), level=lambda i: 20 * i)
    (tmp_path / "labels.txt").write_text("Walk\n")
    (tmp_path / "split.txt").write_text("Walk/a.mp4\nWalk/gone.mp4\n")
    with pytest.raises(FileNotFoundError, match=r"1 video\(s\) listed in .*split.txt do not exist.*gone.mp4"):
        video.VideoFolder(tmp_path, split_file=tmp_path / "split.txt")
    with pytest.warns(UserWarning, match="gone.mp4"):
        ds = video.VideoFolder(tmp_path, split_file=tmp_path / "split.txt", num_frames=2, on_error="skip")
    assert len(ds) == 1 and "gone.mp4" in ds.skipped[0] and ds[0][0].shape == (2, 3, 16, 16)
