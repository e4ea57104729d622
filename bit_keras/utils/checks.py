"""Argument checks that every public function shares, with errors that name the argument.

Each error says what was received and what would be accepted (``docs/design.md``), e.g.
``ValueError("steps must be a positive int or None. Received: steps=0")``. Booleans are
refused where ints are asked for: ``True`` is an int to Python, never a count to a user.
"""

import math
import numbers

import numpy as np


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def positive_int(value, name, allow_none=False, accepted=None):
    """``value`` as an int if it is a positive int (or None when allowed), else ValueError.

    Args:
        value: what the user passed.
        name: the argument's name, as the user spells it.
        allow_none: also accept None (returned as is).
        accepted: the phrase after "must be"; default "a positive int[ or None]".

    Example:

    >>> bit_keras.utils.checks.positive_int(0, "steps")
    ValueError: steps must be a positive int. Received: steps=0
    """
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        accepted = accepted or ("a positive int or None" if allow_none else "a positive int")
        raise ValueError(f"{name} must be {accepted}. Received: {name}={value!r}")
    return int(value)


def non_negative_int(value, name, allow_none=False, accepted=None):
    """``value`` as an int if it is an int >= 0 (or None when allowed), else ValueError."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 0:
        accepted = accepted or ("None or a non-negative int" if allow_none
                                else "a non-negative int")
        raise ValueError(f"{name} must be {accepted}. Received: {name}={value!r}")
    return int(value)


def one_of(value, name, accepted):
    """``value`` if it is in ``accepted``, else a ValueError listing them."""
    if value not in accepted:
        raise ValueError(f"{name} must be one of {list(accepted)}. Received: {name}={value!r}")
    return value


def finite_number(value, name, strictly_positive=False, note="", allow_none=False):
    """Returns ``value`` if it is a finite real number ``> 0`` (``strictly_positive``) or
    ``>= 0`` (or None when allowed); else raises a ValueError naming it (bools refused)."""
    if value is None and allow_none:
        return None
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(value) and (value > 0 if strictly_positive else value >= 0))
    if not ok:
        bound = "> 0" if strictly_positive else ">= 0"
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a finite number {bound}{extra}{note}. Received: "
                         f"{name}={value!r}")
    return value


def seed(value, name="seed"):
    """``value`` as an int if it is a seed: an int in [0, 2**63) (what NumPy and TensorFlow's
    stateless ops take), else a ValueError naming it."""
    if not _is_int(value) or not 0 <= value < 2 ** 63:
        raise ValueError(f"{name} must be an int >= 0 (and < 2**63). Received: {name}={value!r}")
    return int(value)
