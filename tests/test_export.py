"""The deploy model exports with nothing baked in from the example input's size.

Trace/export at one size, run at another, compare with eager. The kernel-crop guard of
`dwconv.depthwise_conv2d` and its Python autograd function step aside while a model is traced or
exported (same numbers: plain F.conv2d with the full kernel). ONNX checks need `onnx` (and
`onnxruntime` to run the file); they are skipped where those are not installed.
"""
import warnings

import pytest
import torch

import unirep_lite
from unirep_lite.blocks import LayerNorm2d

SMALL, OTHER = (2, 3, 64, 64), (3, 3, 224, 192)  # at 64 x 64 the eager conv crops 13 x 13 kernels


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    train = unirep_lite.create_model("unireplknet_a", num_classes=10, depths=(1, 1, 2, 1),
                                     dims=(16, 32, 48, 64)).eval()
    return {"train-eval": train, "deploy": unirep_lite.reparameterize(train)}


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(*SMALL, generator=g), torch.randn(*OTHER, generator=g)


@pytest.mark.parametrize("kind", ["train-eval", "deploy"])
def test_jit_trace_at_one_size_runs_at_another(models, kind, one_thread):
    model, (small, other) = models[kind], _inputs()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in Python, fine here
        traced = torch.jit.trace(model, small)
        torch.testing.assert_close(traced(other), model(other), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["train-eval", "deploy"])
def test_torch_export_with_dynamic_height_and_width(models, kind, one_thread):
    model, (small, other) = models[kind], _inputs()
    dims = {0: torch.export.Dim("B", max=64), 2: torch.export.Dim("H", min=64, max=1024),
            3: torch.export.Dim("W", min=64, max=1024)}
    with torch.no_grad():
        program = torch.export.export(model, (small,), dynamic_shapes={"x": dims})
        torch.testing.assert_close(program.module()(other), model(other), rtol=1e-5, atol=1e-5)


def test_layernorm2d_scripts():
    ln = LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_()
    x = torch.randn(2, 8, 5, 7)
    scripted = torch.jit.script(ln)
    torch.testing.assert_close(scripted(x), ln(x))
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_runs_at_another_size(models, dynamo, tmp_path, one_thread):
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model, (small, other) = models["deploy"], _inputs()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, (small,), dynamo=True, input_names=["x"],
                                        dynamic_shapes={"x": {0: "B", 2: "H", 3: "W"}})
            program.save(str(tmp_path / "m.onnx"))
        else:
            torch.onnx.export(model, (small,), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "B", 2: "H", 3: "W"}})
        session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: other.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(out), model(other), rtol=1e-4, atol=1e-4)
