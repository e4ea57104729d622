"""Every public BiT model as data: architecture, upstream data, head size, weight file.

One table (``VARIANTS``) produces every name, the README's variant table and the weight
file locations. Names are spelled as upstream spells them (``BiT-M-R50x1``).
"""

import dataclasses
import difflib

from bit_keras.utils.names import architecture_name

# Units per block of the pre-activation ResNet-v2 depths (He et al. 2016); R26 and R14
# are small members of the same family for experiments and tests.
UNITS = {
    14: (1, 1, 1, 1),
    26: (2, 2, 2, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

BASE_URL = "https://storage.googleapis.com/bit_models/"

UPSTREAM = {
    # name: (dataset, classes, head activation the upstream loss used)
    "S": ("ILSVRC-2012", 1000, "softmax"),
    "M": ("ImageNet-21k", 21843, "sigmoid"),
    "L": ("JFT-300M", 18291, "sigmoid"),
}

PUBLIC_ARCHITECTURES = ((50, 1), (50, 3), (101, 1), (101, 3), (152, 2), (152, 4))

# The 19 VTAB-1k tasks as the official bucket spells them (vtab/BiT-M-R50x1-run0-dtd.npz),
# with the head size each fine-tuned file carries (VTAB's task definitions: dSprites
# position and orientation in 16 bins, CLEVR counts 3-10, KITTI's closest-vehicle distance
# in 4 bins, ...). Each BiT-M architecture below was fine-tuned 3 times (run0..run2).
VTAB_TASKS = {
    "caltech101": 102, "cifar100": 100, "dtd": 47, "oxford_flowers102": 102,
    "oxford_iiit_pet": 37, "sun397": 397, "svhn": 10,
    "patch_camelyon": 2, "eurosat": 10, "resisc45": 45, "diabetic_retinopathy": 5,
    "clevr-count": 8, "clevr-distance": 6, "dmlab": 6, "kitti-distance": 4,
    "dsprites-xpos": 16, "dsprites-orientation": 16, "smallnorb-azimuth": 18,
    "smallnorb-elevation": 9,
}
VTAB_ARCHITECTURES = ((50, 1), (101, 1), (50, 3), (101, 3), (152, 4))
VTAB_RUNS = 3


@dataclasses.dataclass(frozen=True)
class Variant:
    """One named BiT model.

    Attributes:
        name: the upstream spelling, e.g. ``"BiT-M-R50x1"``.
        depth: 50, 101 or 152 (or 14/26 for small models).
        width: the width multiplier (1 to 4).
        upstream: the dataset the weights were trained on.
        num_classes: the size of the head those weights carry (None: no upstream head).
        weights_path: the file under ``BASE_URL``, or ``None`` when weights were never
            released (BiT-L).
        resolution: the image side the weights were trained or fine-tuned at.
        note: anything a user should know.
        base_filters: bottleneck channels of block 1 at width 1 (64 for BiT).
        groups: GroupNorm groups (32 for BiT).
        vtab_task: the VTAB-1k task a fine-tuned BiT-M file was trained on, else None.
    """

    name: str
    depth: int
    width: int
    upstream: str
    num_classes: int | None
    weights_path: str | None
    resolution: int = 224
    note: str = ""
    base_filters: int = 64
    groups: int = 32
    vtab_task: str | None = None

    @property
    def units(self):
        return UNITS[self.depth]

    @property
    def architecture(self):
        return architecture_name(self.units, self.width)

    @property
    def weights_url(self):
        return None if self.weights_path is None else BASE_URL + self.weights_path

    def architecture_kwargs(self):
        """``units``, ``width``, ``base_filters`` and ``groups`` for ``bit_keras.resnet_v2``."""
        return dict(units=self.units, width=self.width, base_filters=self.base_filters,
                    groups=self.groups)


def _make_table():
    table = {}

    def add(variant):
        table[variant.name] = variant

    for depth, width in PUBLIC_ARCHITECTURES:
        arch = f"R{depth}x{width}"
        for tier in ("S", "M"):
            dataset, classes, _ = UPSTREAM[tier]
            add(Variant(f"BiT-{tier}-{arch}", depth, width, dataset, classes,
                        f"BiT-{tier}-{arch}.npz"))
        add(Variant(f"BiT-M-{arch}-ILSVRC2012", depth, width, "ImageNet-21k, then ILSVRC-2012",
                    1000, f"BiT-M-{arch}-ILSVRC2012.npz", resolution=480,
                    note="BiT-M fine-tuned on ILSVRC-2012 with the HyperRule"))
        dataset, classes, _ = UPSTREAM["L"]
        add(Variant(f"BiT-L-{arch}", depth, width, dataset, classes, None,
                    note="architecture only: the BiT-L weights were never released"))
    for res in (224, 160):
        add(Variant(f"BiT-M-R50x1-distilled-{res}", 50, 1, "ImageNet-21k, distilled on ILSVRC-2012",
                    1000, f"distill/R50x1_{res}.npz", resolution=res,
                    note="student distilled from BiT-M-R152x2 (Beyer et al. 2021)"))
    for res in (224, 384):
        add(Variant(f"BiT-M-R152x2-teacher-{res}", 152, 2, "ImageNet-21k, then ILSVRC-2012",
                    1000, f"distill/R152x2_T_{res}.npz", resolution=res,
                    note="the distillation teacher (Beyer et al. 2021)"))
    for depth, width in VTAB_ARCHITECTURES:
        for run in range(VTAB_RUNS):
            for task, classes in VTAB_TASKS.items():
                name = f"BiT-M-R{depth}x{width}-run{run}-{task}"
                add(Variant(name, depth, width, f"ImageNet-21k, then VTAB-1k {task}", classes,
                            f"vtab/{name}.npz", note=f"VTAB-1k fine-tuning run {run}",
                            vtab_task=task))
    # Tiny members of the family, registered like the real ones (as timm registers its test
    # models): what the tests, the demo and the benchmarks build. No weights, no upstream head.
    add(Variant(TINY, 14, 1, "none", None, None, resolution=32, base_filters=16, groups=8,
                note="a tiny R14 (16 base channels, 8 groups) for tests and the demo"))
    return table


TINY = "R14x1-tiny"
VARIANTS = _make_table()


def get_variant(name):
    """Returns the ``Variant`` called ``name``; unknown names list the valid ones."""
    if isinstance(name, Variant):
        return name
    if name not in VARIANTS:
        close = difflib.get_close_matches(str(name), VARIANTS, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        listed = [n for n, v in VARIANTS.items() if v.vtab_task is None]
        raise ValueError(
            f"Unknown BiT model name: {name!r}. Valid names are: {', '.join(listed)}, "
            f"and the {len(VARIANTS) - len(listed)} VTAB-1k runs {vtab_pattern()} with task "
            f"one of {', '.join(VTAB_TASKS)}.{hint}")
    return VARIANTS[name]


def vtab_pattern():
    """``BiT-M-{R50x1,...}-run{0,1,2}-{task}``: how the VTAB-1k names are made."""
    archs = ",".join(f"R{d}x{w}" for d, w in VTAB_ARCHITECTURES)
    runs = ",".join(map(str, range(VTAB_RUNS)))
    return f"BiT-M-{{{archs}}}-run{{{runs}}}-{{task}}"


def markdown_table():
    """The README's variant table, made from ``VARIANTS``."""
    rows = ["| name | architecture | upstream data | head | weights (under the bucket) |",
            "|---|---|---|---|---|"]
    for v in VARIANTS.values():
        if v.vtab_task is not None:
            continue
        where = f"`{v.weights_path}`" if v.weights_path else "never released"
        head = v.num_classes if v.num_classes else "none"
        rows.append(f"| `{v.name}` | {v.architecture} | {v.upstream} | {head} | {where} |")
    count = len(VTAB_ARCHITECTURES) * VTAB_RUNS * len(VTAB_TASKS)
    rows.append(f"| `{vtab_pattern()}` ({count} names) | as named | "
                "ImageNet-21k, then the VTAB-1k task | the task's (below) | "
                "`vtab/{name}.npz` |")
    rows += ["", "| VTAB-1k task | head |", "|---|---|"]
    rows += [f"| `{task}` | {classes} |" for task, classes in VTAB_TASKS.items()]
    return "\n".join(rows)
