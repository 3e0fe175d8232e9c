"""`crosscheck verify` for kernel authors: accuracy models, every dtype by default, output, reproducers, usage errors.

Each meta-test names its target (tests/support/verify_targets) and the verdict it must get; the planted bugs must be
caught at the default settings (no --dtype), the correct fast algorithms must pass under their accuracy model.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from crosscheck import ConvSpec
from crosscheck.checks.accuracy import toom_cook, winograd_error, winograd_layouts, winograd_magnitude
from crosscheck.checks.forward import bound_for, compare
from crosscheck.core.errors import CrosscheckError
from crosscheck.core.problem import ConvProblem
from crosscheck.core.values import make_problem
from crosscheck.reference import reference
from crosscheck.reference.elementwise import magnitude
from crosscheck.verify import verify

TARGETS = Path(__file__).parents[1] / "support" / "verify_targets"


def target(name: str, fn: str = "conv") -> str:
    return f"{TARGETS / name}.py:{fn}"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crosscheck", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


# ------------------------------------------------------------------------------------------ accuracy models


@pytest.mark.parametrize("seed", range(5))
def test_a_float64_fft_returning_float32_passes_the_normwise_model(seed: int) -> None:
    v = verify(target("fft_plain"), dtypes="float32", accuracy="normwise", seed=seed)
    assert v.status == "verified", v.text()
    assert v.record["run"]["verify"]["accuracy"] == "normwise"
    assert all(b["capabilities"]["bound"] == "normwise" for b in v.record["backends"])


def test_the_same_fft_fails_the_elementwise_model_with_the_hint() -> None:
    v = verify(target("fft_plain"), dtypes="float32", seed=0, properties=["matches_reference"])
    assert v.status == "failed", v.text()
    message = v.failures[0]["message"]
    assert "Every element is within the normwise bound" in message and "--accuracy normwise" in message


def test_a_wrong_fft_fails_the_normwise_model_and_gets_no_hint() -> None:
    # The flipped kernel is wrong by O(1): no accuracy model may pass it, and no hint may suggest one.
    v = verify(target("flipped"), dtypes="float32", accuracy="normwise", seed=0, max_examples=50)
    assert v.status == "failed"
    elementwise = verify(target("flipped"), dtypes="float32", seed=0, max_examples=50)
    assert "normwise bound" not in elementwise.failures[0]["message"]


def test_a_correct_winograd_f23_kernel_passes_the_winograd_model() -> None:
    v = verify(target("winograd"), dtypes="float32", accuracy="winograd", seed=0, max_examples=60)
    assert v.status == "verified", v.text()
    assert "winograd" in v.text()


@pytest.mark.parametrize("model", ["winograd", "winograd:2", "normwise"])
def test_a_winograd_kernel_with_one_wrong_transform_constant_fails(model: str) -> None:
    v = verify(target("winograd", "conv_wrong_constant"), dtypes="float32", accuracy=model, seed=0)
    assert v.status == "failed", v.text()
    assert "Values are not within the error bound" in v.failures[0]["message"]


@pytest.mark.filterwarnings("error")
def test_integers_are_exact_under_every_model() -> None:
    spec = ConvSpec(1, 1, 1, (4,), (2,), dtype="int32")
    problem = make_problem(spec, seed=0)
    ref = reference(problem)
    off = np.asarray(ref.value, dtype=np.int64).astype(np.int32) + 1
    for model in ("normwise", "winograd"):
        verdict = compare(problem, off, ref, bound_kind=model)
        assert not verdict.passed and verdict.exact and "Values are not equal!" in verdict.message


def test_the_toom_cook_matrices_compute_the_correlation() -> None:
    rng = np.random.default_rng(0)
    for m, r in [(2, 3), (4, 3), (6, 3), (2, 5), (3, 2)]:
        a_t, g, b_t = toom_cook(m, r)
        d, w = rng.standard_normal(m + r - 1), rng.standard_normal(r)
        want = np.array([d[i : i + r] @ w for i in range(m)])
        np.testing.assert_allclose(a_t @ ((g @ w) * (b_t @ d)), want, rtol=0, atol=1e-12)


def test_the_winograd_magnitude_covers_the_direct_one() -> None:
    # W bounds |Aᵀ|(|G||g| ⊙ |Bᵀ||d|) over every tiling; each tile holds the direct products, so W ≥ M.
    spec = ConvSpec(2, 4, 6, (9, 6), (3, 2), stride=(2, 1), padding=((1, 0), (0, 2)), groups=2, dtype="float32")
    problem = make_problem(spec, seed=3)
    for m in (2, 4, 6):
        assert np.all(winograd_magnitude(problem, m) >= magnitude(problem) * (1 - 1e-12))
    dilated = make_problem(spec.with_(dilation=(2, 3), padding=((2, 1), (3, 3))), seed=4)
    for m in (2, 4, 6):
        for dense in (False, True):
            assert np.all(winograd_magnitude(dilated, m, dense) >= magnitude(dilated) * (1 - 1e-12))


def test_a_dilated_kernel_is_modelled_on_its_phases_and_densely_only_where_that_fits_a_tile() -> None:
    spec = ConvSpec(1, 2, 2, (30, 30), (3, 3), dtype="float32")
    assert winograd_layouts(spec) == (False,)
    assert winograd_layouts(spec.with_(dilation=(1, 3))) == (False, True)  # 7 taps dense: F(m, 7) tiles exist
    assert winograd_layouts(spec.with_(dilation=(4, 1))) == (False,)  # 9 taps: no library tiles them
    assert winograd_layouts(spec.with_(kernel=(9, 3), dilation=(1, 2))) == (False, True)  # the 9 are undilated


@pytest.mark.parametrize("m", [2, 4, 6])
def test_the_phase_model_is_the_undilated_model_on_each_phase(m: int) -> None:
    # Output q = φ + t·d of a kernel dilated by d reads the padded input at φ + (t + u)·d: phase φ of the output is
    # the undilated correlation of phase φ of the padded input, tiles and all, so their W must be the same.
    spec = ConvSpec(2, 4, 3, (23, 17), (3, 2), padding=((2, 1), (0, 3)), dilation=(3, 2), dtype="float32")
    problem = make_problem(spec, seed=5)
    w_phases = winograd_magnitude(problem, m)
    xp = np.pad(problem.x, [(0, 0), (0, 0), *spec.pads])
    for phase in itertools.product(range(3), range(2)):
        take = (slice(None), slice(None), *(slice(p, None, d) for p, d in zip(phase, spec.dilation)))
        part = xp[take]
        one = ConvSpec(2, 4, 3, part.shape[2:], (3, 2), dtype="float32")
        undilated = winograd_magnitude(ConvProblem(one, np.ascontiguousarray(part), problem.w), m)
        np.testing.assert_allclose(w_phases[take], undilated, rtol=1e-13, atol=0)


def test_a_wide_dilation_gets_a_bound_of_the_kernels_own_size() -> None:
    # DeepLab's rate-36 3×3: as a dense 73-tap tile the bound was ~10⁸²·M (anything passed) and took 18 GB; on its
    # phases it is the 3×3 kernel's own, within a small factor of the undilated layer's.
    spec = ConvSpec(1, 8, 8, (80, 80), (3, 3), padding=((36, 36), (36, 36)), dilation=(36, 36), dtype="float32")
    problem = make_problem(spec, seed=6)
    plain = make_problem(spec.with_(dilation=(1, 1), padding=((1, 1), (1, 1))), seed=6)
    ratio = np.max(winograd_error(problem, 2.0**-24) / magnitude(problem))
    plain_ratio = np.max(winograd_error(plain, 2.0**-24) / magnitude(plain))
    assert 0 < ratio <= 4 * plain_ratio


@pytest.mark.parametrize("seed", range(5))
def test_a_float32_fft_stays_within_the_normwise_bound(seed: int) -> None:
    # scipy.fft transforms float32 in single precision: a real float32 FFT correlation, with zero windows where
    # only its noise is left (the element-wise bound is u·|y| = 0 there), must meet the normwise bound.
    from scipy import fft

    spec = ConvSpec(2, 3, 2, (40,), (5,), padding=((2, 2),), dtype="float32")
    problem = make_problem(spec, seed=seed)
    problem.x[:, :, 10:20] = 0  # windows of zeros
    length = 64
    wf = fft.rfft(problem.w, n=length, axis=-1)
    xp = np.pad(problem.x, [(0, 0), (0, 0), (2, 2)])
    xf = fft.rfft(xp, n=length, axis=-1)
    y = fft.irfft(np.einsum("ncf,ocf->nof", xf, np.conj(wf)), n=length, axis=-1)[..., : spec.out_size[0]]
    assert y.dtype == np.float32
    ref = reference(problem)
    err = np.abs(y.astype(np.float64) - ref.approx)
    assert np.all(err <= bound_for(problem, ref, 2.0**-24, "normwise"))
    assert np.any(err > bound_for(problem, ref, 2.0**-24, "elementwise"))


def test_bad_models_and_dtypes_are_usage_errors() -> None:
    with pytest.raises(CrosscheckError, match="expected one of elementwise, normwise, winograd"):
        verify(target("flipped"), accuracy="fft")
    with pytest.raises(CrosscheckError, match="expected one or more of"):
        verify(target("flipped"), dtypes="float8")


def test_compare_keeps_the_hint_out_of_passing_and_integer_results() -> None:
    spec = ConvSpec(1, 1, 1, (4,), (2,), dtype="int32")
    problem = make_problem(spec, seed=0)
    ref = reference(problem)
    off = np.asarray(ref.value, dtype=np.int64).astype(np.int32) + 1
    assert "normwise" not in compare(problem, off, ref).message


# ------------------------------------------------------------------------------------------ every dtype


def test_float16_accumulation_is_caught_by_a_default_verify() -> None:
    v = verify(target("f16_accumulation"), seed=0)
    assert v.status == "failed"
    by = {f["dtype"] for f in v.failures}
    assert "float16" in by and not by & {"float32", "float64"}, v.text()
    assert "float16" in v.text().splitlines()[0]


def test_tf32_rounded_inputs_are_caught_in_float32() -> None:
    v = verify(target("tf32_inputs"), seed=0)
    assert v.status == "failed"
    assert {f["dtype"] for f in v.failures} == {"float32"}, v.text()


def test_dtype_narrows_and_runs_every_property_in_it() -> None:
    v = verify(target("correct_im2col"), dtypes=["float16"], seed=0, max_examples=10)
    assert v.record["run"]["verify"]["dtypes"] == ["float16"]
    props = {r["property"] for r in v.record["results"]}
    assert len(props) == 8 and all(r["backend"].endswith("[float16]") for r in v.record["results"])


def test_a_dtype_the_function_declines_is_listed_once() -> None:
    v = verify(target("correct_fft"), seed=0, max_examples=10, properties=["matches_reference"])
    assert v.status == "verified", v.text()
    declined = v.record["run"]["verify"]["declined"]
    assert [d["dtype"] for d in declined] == ["float64"] and "NotImplementedError" in declined[0]["reason"]
    lines = [line for line in v.text().splitlines() if "declined" in line]
    assert len(lines) == 2 and "(float64 declined)" in lines[0], v.text()  # the verdict, and the dtype's line


# ------------------------------------------------------------------------------------------ output


def test_a_2d_only_target_prints_no_internal_lines(tmp_path: Path) -> None:
    proc = run_cli("verify", target("only_2d"), "--seed", "0", "--max-examples", "20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("verified: ")
    for word in ("unsupported", "Capabilities", "gradient", "transposed", "named_padding", "backend"):
        assert word not in out, out
    assert "minimal example in the report" not in proc.stderr


def test_the_reproducer_runs_from_another_directory(tmp_path: Path) -> None:
    # The target named relative to tests/: the printed reproducer must still load it from elsewhere.
    proc = run_cli("verify", "verify_targets/flipped.py:conv", "--dtype", "float32", "--seed", "0", cwd=TARGETS.parent)
    assert proc.returncode == 1
    assert "minimal example below" in proc.stderr and "in the report" not in proc.stderr
    text = proc.stdout
    assert "get_backend(" not in text
    code = text.split("Reproduce with:\n", 1)[1].split("\n\n", 1)[0]
    assert str(TARGETS / "flipped.py") in code
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 1 and "PropertyFailure" in run.stderr and "get_backend(" not in run.stderr, run.stderr
    snippet = text.split("The failing call without crosscheck:\n", 1)[1].split("\n\n", 1)[0]
    assert "crosscheck" not in snippet.replace("crosscheck's reference", "")
    alone = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert alone.returncode == 0 and "largest |y - expected|:" in alone.stdout, alone.stderr
    assert float(alone.stdout.split(":")[-1]) > 0  # the snippet shows the bug by itself


# ------------------------------------------------------------------------------------------ usage errors


def test_a_wrong_signature_is_bad_usage() -> None:
    proc = run_cli("verify", target("wrong_signature"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "function(x, w, *, stride, padding, dilation, groups)" in lines[0], proc.stderr


def test_a_function_in_main_is_one_line_naming_isolate_false(tmp_path: Path) -> None:
    script = tmp_path / "mine.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(TARGETS.parent)!r})
            from crosscheck.core.errors import CrosscheckError
            from crosscheck.verify import verify
            from verify_targets._conv import correlate

            def conv(x, w, *, stride, padding, dilation, groups):
                return correlate(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

            v = verify(conv, isolate=False, max_examples=5, seed=0, dtypes="float32")
            print(v.status)
            try:
                verify(conv, max_examples=5)
            except CrosscheckError as exc:
                print(exc, file=sys.stderr)
                sys.exit(2)
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "__main__" in lines[0] and "isolate=False" in lines[0], proc.stderr
    assert proc.stdout.strip() == "verified"  # in this process it runs
