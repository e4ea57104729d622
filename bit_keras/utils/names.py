"""The ``R50x1`` style architecture name: the one place it is made."""


def depth(units):
    """The ResNet depth of units per block: 3 convolutions a unit, plus stem and head."""
    return 3 * sum(units) + 2


def architecture_name(units, width):
    """``R{depth}x{width}``, e.g. ``architecture_name((3, 4, 6, 3), 1) == "R50x1"``."""
    return f"R{depth(units)}x{width}"
