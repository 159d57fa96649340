"""Fixtures shared by the test files."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and don't slow down when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def write_mp4():
    """write_mp4(path, num_frames, size=(32, 48), level=lambda i: 10 * i): a tiny h264 mp4 whose
    frame i is a flat grey of brightness level(i)."""
    av = pytest.importorskip("av")

    def write(path, num_frames, size=(32, 48), level=lambda i: 10 * i):
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "h264", rate=10)
            stream.height, stream.width = size
            stream.pix_fmt = "yuv420p"
            for i in range(num_frames):
                frame = np.full((*size, 3), level(i), np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    return write


@pytest.fixture
def python_without():
    """python_without(module, code): run `code` in a fresh interpreter in which `import module` fails."""
    def run(module: str, code: str, timeout: float = 300):
        prelude = f"import sys; sys.modules[{module!r}] = None\n"  # makes `import module` raise ImportError
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        subprocess.run([sys.executable, "-c", prelude + code], check=True, env=env, timeout=timeout)
    return run
