"""The unit plan of a BiT: each unit's stride, dilation and drop-path rate.

Dense prediction (detection, segmentation) wants features at stride 8 or 16: the later blocks
then keep their resolution and dilate their 3x3 convolutions instead of striding, with the
same weights (timm's ``ResNetV2(output_stride=...)`` and Hugging Face's BiT do the same).
Stochastic depth (Huang et al. 2016) drops a unit's branch per example in training, at a
rate rising linearly over the units (timm's ``drop_path_rate``).
"""

# The stride of the last block's output: 32 is BiT's; 16 and 8 dilate the later blocks.
OUTPUT_STRIDES = (8, 16, 32)


def block_plan(units, output_stride=32, drop_path_rate=0.0):
    """Per unit ``(block, unit, stride, dilation, drop_path)``, as timm's ResNetV2 plans it.

    A block that would bring the stride past ``output_stride`` keeps stride 1 and multiplies
    the dilation by 2 instead; its first unit dilates by 1 (2 from dilation 4 on), the others
    by the block's dilation. Drop-path rates rise linearly from 0 to ``drop_path_rate`` over
    all units.
    """
    total, plan, stride_so_far, dilation, index = sum(units), [], 4, 1, 0
    for b, n in enumerate(units, start=1):
        stride = 1 if b == 1 else 2
        if stride_so_far >= output_stride:
            dilation, stride = dilation * stride, 1
        stride_so_far *= stride
        first_dilation = 1 if dilation in (1, 2) else 2
        for u in range(1, n + 1):
            rate = drop_path_rate * index / (total - 1) if total > 1 else 0.0
            plan.append((b, u, stride if u == 1 else 1, first_dilation if u == 1 else dilation,
                         rate))
            index += 1
    return plan
