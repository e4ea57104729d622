"""The PyTorch peer, timm's ``ResNetV2`` BiT, timed in the same round-robin as ours.

Only when ``timm`` imports (it is not a dependency of bit_keras, nor of its tests):

    pip install torch==2.14.1 torchvision==0.29.1 timm

The timm model carries our model's weights (``checkpoints.keys.official_to_timm``) and its
logits are checked against ours before anything is timed. It gets its native input, an NCHW
tensor already scaled to [-1, 1] (ours takes NHWC images in [0, 1] and scales them inside
the model), runs under ``torch.inference_mode`` in eval mode, and uses one thread per core.
On a CUDA ``device`` (``benchmarks.gpu``) its inputs are on the GPU before anything is timed,
each call ends by copying its logits or loss to the host (which waits for the GPU), cuDNN
autotunes its convolutions (``cudnn.benchmark``, as XLA does), and float32 means IEEE
float32: TF32, PyTorch's default for cuDNN convolutions, is turned off.
Its best layout is found, not assumed: both the default NCHW tensors and ``channels_last``
are timed, and every "x timm" ratio is to the faster of the two.
"""

import sys

import numpy as np

R50X1_UNITS = (3, 4, 6, 3)
INSTALL = "pip install torch==2.14.1 torchvision==0.29.1 timm"
_why = {"reason": None}


def preload():
    """Imports torch and timm if installed; call it before anything imports TensorFlow.

    timm imported after TensorFlow crashes the process (seen with torch 2.14.1, timm
    1.0.31 and TensorFlow 2.21: a segmentation fault loading triton), so
    ``benchmarks.run`` calls this first. Returns whether the peer can be timed.
    """
    if "timm" in sys.modules:
        return True
    if "tensorflow" in sys.modules:
        _why["reason"] = ("timm must be imported before TensorFlow in a process "
                          "(python -m benchmarks.run does that)")
        return False
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        _why["reason"] = f"timm is not installed (to time it: {INSTALL})"
        return False
    return True


def available():
    """Whether timm was preloaded in this process (``preload``)."""
    return "timm" in sys.modules and "torch" in sys.modules


def why_not():
    return _why["reason"] or "not preloaded"


def versions():
    import timm
    import torch
    return {"torch": torch.__version__, "timm": timm.__version__,
            "torch_threads": torch.get_num_threads()}


def timm_bit(arch):
    """A timm ResNetV2 BiT of ``arch``: ``resnetv2_50x1_bit`` itself when ``arch`` is R50x1."""
    from functools import partial

    import timm
    from timm.layers import GroupNormAct, StdConv2d
    from timm.models.resnetv2 import ResNetV2
    if tuple(arch["units"]) == R50X1_UNITS and arch["width"] == 1 and \
            arch["base_filters"] == 64 and arch["groups"] == 32:
        return timm.create_model("resnetv2_50x1_bit", pretrained=False,
                                 num_classes=arch["num_classes"])
    base = arch["base_filters"]
    return ResNetV2(list(arch["units"]), channels=tuple(4 * base * 2 ** i for i in range(4)),
                    num_classes=arch["num_classes"], width_factor=arch["width"],
                    stem_chs=base, stem_type="fixed",
                    norm_layer=partial(GroupNormAct, num_groups=arch["groups"]),
                    conv_layer=partial(StdConv2d, eps=1e-8))


def timm_copy(model, arch, device="cpu"):
    """timm's BiT with ``model``'s weights (a bit_keras BiT of architecture ``arch``)."""
    import torch

    from benchmarks import timing
    from bit_keras.checkpoints import keys, transfer
    torch.set_num_threads(timing.cores())
    if torch.device(device).type == "cuda":
        _cuda_settings(torch)
    peer = timm_bit(arch)
    state = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
             for k, v in keys.official_to_timm(transfer.official_weights(model)).items()}
    peer.load_state_dict(state, strict=True)
    return peer.to(device).eval()


def _cuda_settings(torch):
    """cuDNN picks its fastest convolutions, as XLA does; no TF32 in float32 arithmetic."""
    torch.backends.cudnn.benchmark = True  # autotuned on the first call, before timing
    if hasattr(torch.backends.cudnn, "conv"):  # torch >= 2.9; mixing both APIs raises
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def _tensor(images, channels_last, device="cpu"):
    import torch
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    x = x * 2.0 - 1.0
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _autocast(device, dtype):
    """bfloat16 through ``torch.autocast`` (float32 weights), as Keras' mixed_bfloat16."""
    import torch
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=dtype == "bfloat16")


def inference_routes(model, arch, bfloat16=True, device="cpu"):
    """dict ``"timm/<layout>/<dtype>"`` -> factory(images) -> zero-argument callable."""
    import torch
    routes = {}
    for layout, channels_last in (("nchw", False), ("channels_last", True)):
        peer = timm_copy(model, arch, device)
        if channels_last:
            peer = peer.to(memory_format=torch.channels_last)
        for dtype in ("float32", "bfloat16") if bfloat16 else ("float32",):
            routes[f"timm/{layout}/{dtype}"] = _inference(peer, channels_last, dtype, device)
    return routes


def _inference(peer, channels_last, dtype, device):
    import torch

    def make(images):
        x = _tensor(images, channels_last, device)

        def run():
            with torch.inference_mode(), _autocast(device, dtype):
                return peer(x).float().cpu().numpy()  # the copy waits for the device

        return run

    return make


def train_steps(model, arch, images, labels, dtypes=("float32",), device="cpu"):
    """dict ``"timm/step_<layout>/<dtype>"`` -> one SGD-momentum update of a timm copy.

    The step is what a PyTorch user writes: ``zero_grad``, forward (under ``torch.autocast``
    for bfloat16), softmax cross-entropy on the one-hot labels averaged over the batch,
    ``backward``, ``SGD(lr=0.003, momentum=0.9).step()``, matching
    ``bit_keras.training.make_train_step``'s update. Each step returns its loss, computed
    before the update.
    """
    import torch
    steps = {}
    y = torch.from_numpy(np.asarray(labels, np.float32)).to(device)
    for layout, channels_last in (("nchw", False), ("channels_last", True)):
        x = _tensor(images, channels_last, device)
        for dtype in dtypes:
            peer = timm_copy(model, arch, device).train()
            if channels_last:
                peer = peer.to(memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(peer.parameters(), lr=0.003, momentum=0.9)

            def step(peer=peer, optimizer=optimizer, x=x, dtype=dtype):
                optimizer.zero_grad(set_to_none=True)
                with _autocast(device, dtype):
                    loss = torch.nn.functional.cross_entropy(peer(x), y)
                loss.backward()
                optimizer.step()
                return loss.detach().float().cpu().numpy()  # the copy waits for the device

            steps[f"timm/step_{layout}/{dtype}"] = step
    return steps


def best(measured, prefix, dtype):
    """The fastest timm candidate of ``measured`` (name -> timing) for ``prefix`` and dtype."""
    names = [n for n in measured if n.startswith(prefix) and n.endswith("/" + dtype)]
    return min(names, key=lambda n: measured[n]["seconds"]) if names else None
