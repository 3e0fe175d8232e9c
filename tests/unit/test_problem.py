from __future__ import annotations

import pytest

from crosscheck import ConvSpec
from crosscheck.core.errors import ProblemError
from crosscheck.core.padding import resolve_padding


def spec(**kw: object) -> ConvSpec:
    base: dict[str, object] = dict(batch=1, in_channels=4, out_channels=6, in_size=(8, 8), kernel=(3, 3))
    base.update(kw)
    return ConvSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"groups": 3}, "groups"),
        ({"stride": (0, 1)}, "stride"),
        ({"stride": (1,)}, "stride"),
        ({"dilation": (1, -2)}, "dilation"),
        ({"kernel": (9, 3)}, "kernel"),
        ({"kernel": (3, 3), "dilation": (4, 1)}, "kernel"),
        ({"padding": ((1, 1),)}, "padding"),
        ({"padding": ((-1, 0), (0, 0))}, "padding"),
        ({"padding": "FULL"}, "padding"),
        ({"batch": 0}, "batch"),
        ({"in_size": (8, 8, 8, 8), "kernel": (1, 1, 1, 1)}, "in_size"),
        ({"dtype": "float8"}, "dtype"),
        ({"layout": "NHWC"}, "layout"),
    ],
)
def test_impossible_geometry_is_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError) as info:
        spec(**changes)
    message = str(info.value)
    assert message.startswith(field), message
    assert "\n" not in message


def test_problem_error_is_a_value_error() -> None:
    with pytest.raises(ProblemError):
        spec(groups=5)


def test_out_size_and_terms() -> None:
    s = spec(stride=(2, 1), dilation=(1, 2), padding=((1, 2), (0, 0)), groups=2)
    # dim 0: (8 + 3 - 3) // 2 + 1 = 5; dim 1: (8 - 5) // 1 + 1 = 4
    assert s.out_size == (5, 4)
    assert s.terms == 2 * 9
    assert s.w_shape == (6, 2, 3, 3)


def test_spec_round_trips_through_dict() -> None:
    for s in (spec(), spec(padding="SAME"), spec(padding=((0, 1), (2, 0)), groups=2)):
        assert ConvSpec.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    ("mode", "n", "k", "s", "d", "expected"),
    [
        ("VALID", 7, 3, 1, 1, (0, 0)),
        ("SAME", 7, 3, 1, 1, (1, 1)),
        ("SAME", 7, 4, 1, 1, (1, 2)),  # odd extra at the end (TF, JAX SAME, ONNX SAME_UPPER)
        ("SAME_LOWER", 7, 4, 1, 1, (2, 1)),  # odd extra at the start
        ("SAME", 7, 3, 2, 1, (1, 1)),  # out = ceil(7/2) = 4, total = 3*2 + 3 - 7 = 2
        ("SAME", 8, 3, 2, 1, (0, 1)),  # out = 4, total = 6 + 3 - 8 = 1
        ("SAME", 5, 3, 1, 2, (2, 2)),  # dilated window 5
        ("SAME", 2, 1, 4, 1, (0, 0)),  # never negative
    ],
)
def test_named_padding(mode: str, n: int, k: int, s: int, d: int, expected: tuple[int, int]) -> None:
    assert resolve_padding(mode, [n], [k], [s], [d]) == (expected,)


def test_same_output_is_ceil_of_input_over_stride() -> None:
    for n in range(1, 12):
        for st in range(1, 4):
            for mode in ("SAME", "SAME_LOWER"):
                s = spec(in_size=(n,), kernel=(3,), stride=(st,), padding=mode)
                assert s.out_size == (-(-n // st),)
