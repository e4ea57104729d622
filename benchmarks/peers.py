"""The PyTorch peer, timm's ``ResNetV2`` BiT, timed in the same round-robin as ours.

Only when ``timm`` imports (it is not a dependency of bit_keras, nor of its tests):

    pip install torch==2.14.1 torchvision==0.29.1 timm

The timm model carries our model's weights (``checkpoints.keys.official_to_timm``) and its
logits are checked against ours before anything is timed. It gets its native input, an NCHW
tensor already scaled to [-1, 1] (ours takes NHWC images in [0, 1] and scales them inside
the model), runs under ``torch.inference_mode`` in eval mode, and uses one thread per core.
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


def timm_copy(model, arch):
    """timm's BiT with ``model``'s weights (a bit_keras BiT of architecture ``arch``)."""
    import torch

    from benchmarks import timing
    from bit_keras.checkpoints import keys, transfer
    torch.set_num_threads(timing.cores())
    peer = timm_bit(arch)
    state = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
             for k, v in keys.official_to_timm(transfer.official_weights(model)).items()}
    peer.load_state_dict(state, strict=True)
    return peer.eval()


def _tensor(images, channels_last):
    import torch
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))) * 2.0 - 1.0
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def inference_routes(model, arch, bfloat16=True):
    """dict ``"timm/<layout>/<dtype>"`` -> factory(images) -> zero-argument callable."""
    import torch
    routes = {}
    for layout, channels_last in (("nchw", False), ("channels_last", True)):
        peer = timm_copy(model, arch)
        if channels_last:
            peer = peer.to(memory_format=torch.channels_last)
        for dtype in ("float32", "bfloat16") if bfloat16 else ("float32",):
            routes[f"timm/{layout}/{dtype}"] = _inference(peer, channels_last, dtype)
    return routes


def _inference(peer, channels_last, dtype):
    import torch

    def make(images):
        x = _tensor(images, channels_last)

        def run():
            with torch.inference_mode(), torch.autocast(
                    "cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                return peer(x).float().numpy()

        return run

    return make


def train_steps(model, arch, images, labels):
    """dict ``"timm/step_<layout>/float32"`` -> one SGD-momentum update of a timm copy.

    The step is what a PyTorch user writes: ``zero_grad``, forward, softmax cross-entropy
    on the one-hot labels averaged over the batch, ``backward``, ``SGD(lr=0.003,
    momentum=0.9).step()``, matching ``bit_keras.training.make_train_step``'s update.
    """
    import torch
    steps = {}
    y = torch.from_numpy(np.asarray(labels, np.float32))
    for layout, channels_last in (("nchw", False), ("channels_last", True)):
        peer = timm_copy(model, arch).train()
        if channels_last:
            peer = peer.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(peer.parameters(), lr=0.003, momentum=0.9)
        x = _tensor(images, channels_last)

        def step(peer=peer, optimizer=optimizer, x=x):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(peer(x), y)
            loss.backward()
            optimizer.step()
            return loss.detach().numpy()

        steps[f"timm/step_{layout}/float32"] = step
    return steps


def best(measured, prefix, dtype):
    """The fastest timm candidate of ``measured`` (name -> timing) for ``prefix`` and dtype."""
    names = [n for n in measured if n.startswith(prefix) and n.endswith("/" + dtype)]
    return min(names, key=lambda n: measured[n]["seconds"]) if names else None
