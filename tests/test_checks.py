"""zoo._checks: the argument checks every zoo function shares."""

import numpy as np
import pytest

from zoo._checks import as_int, as_positive_float


def test_as_int_takes_any_integer_type_and_a_minimum():
    assert as_int(np.int64(3), "n", "f") == 3 and type(as_int(np.int32(3), "n", "f")) is int
    assert as_int(0, "n", "f", minimum=0) == 0
    with pytest.raises(ValueError, match=r"^f: n must be >= 1, got 0$"):
        as_int(0, "n", "f", minimum=1)


@pytest.mark.parametrize("bad", [True, 2.0, "3", None])
def test_as_int_refuses_bools_floats_and_strings(bad):
    with pytest.raises(ValueError, match=rf"^f: n must be an integer, got {bad!r}$"):
        as_int(bad, "n", "f")


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "x", None])
def test_as_positive_float_refuses_what_is_not_finite_and_positive(bad):
    with pytest.raises(ValueError, match="^f: lr must be a positive"):
        as_positive_float(bad, "lr", "f")
    assert as_positive_float(np.float32(0.5), "lr", "f") == 0.5
