"""``mldl._checks``: the value-check toggle and the shared validation helpers.

* ``mldl.checks(enabled)`` works as a plain call (for good) and as a context manager
  (restores the previous setting on exit, exceptions included).
* ``MLDL_CHECKS`` is read once, at import (tested in a fresh interpreter).
* The helpers raise ``TypeError`` / ``ValueError`` whose message starts with
  ``"<function>: <argument>"`` and says what was expected and what came.

Docstrings that start with "Fixed bug:" say what the library did before a fix; the test
asserts what it does now.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import mldl
from mldl import _checks

# ---------------------------------------------------------------------------- the toggle


def test_conftest_turns_checks_on():
    assert mldl.checks_enabled() is True


def test_plain_call_sets_for_good():
    mldl.checks(False)
    assert mldl.checks_enabled() is False
    mldl.checks(True)
    assert mldl.checks_enabled() is True
    mldl.checks(False)
    mldl.checks()  # the default is True
    assert mldl.checks_enabled() is True


def test_returned_setting_reports_the_current_state():
    setting = mldl.checks(False)
    assert bool(setting) is False
    assert repr(setting) == "mldl.checks(False)"
    mldl.checks(True)
    assert bool(setting) is True  # it reads the state, it does not store it
    assert repr(setting) == "mldl.checks(True)"


@pytest.mark.parametrize("outer", [True, False])
@pytest.mark.parametrize("inner", [True, False])
def test_context_manager_restores_previous(outer, inner):
    mldl.checks(outer)
    with mldl.checks(inner) as setting:
        assert mldl.checks_enabled() is inner
        assert bool(setting) is inner
    assert mldl.checks_enabled() is outer


def test_context_manager_restores_on_exception():
    mldl.checks(True)
    with pytest.raises(KeyError), mldl.checks(False):
        raise KeyError("boom")
    assert mldl.checks_enabled() is True


def test_nested_context_managers():
    mldl.checks(False)
    with mldl.checks(True):
        with mldl.checks(False):
            assert not mldl.checks_enabled()
            with mldl.checks(True):
                assert mldl.checks_enabled()
            assert not mldl.checks_enabled()
        assert mldl.checks_enabled()
    assert not mldl.checks_enabled()


def test_plain_call_inside_with_block_is_undone_on_exit():
    """The with block restores the setting it found, whatever happened inside."""
    mldl.checks(True)
    with mldl.checks(True):
        mldl.checks(False)
        assert not mldl.checks_enabled()
    assert mldl.checks_enabled()


def test_checks_toggle_controls_value_checks():
    x, y = torch.rand(4, 3) + 0.5, torch.tensor([0, 1, 2, 0])
    with mldl.checks(False):
        mldl.losses.nll(x, y)  # positive "log-probabilities" pass unchecked
    with pytest.raises(ValueError, match=r"^nll: input: expected log-probabilities"):
        mldl.losses.nll(x, y)


def test_checks_accepts_bools_and_truthy_ints():
    for value, expected in ((True, True), (False, False), (1, True), (0, False)):
        mldl.checks(value)
        assert mldl.checks_enabled() is expected


@pytest.mark.parametrize("value", ["false", "0", "off", "no"])
def test_checks_refuses_strings(value):
    """Fixed bug: mldl.checks("false") turned value checks ON (bool("false") is True),
    silently. Now: a TypeError naming the argument, like every other entry point."""
    with pytest.raises(TypeError, match=r"^checks: enabled\b"):
        mldl.checks(value)


# --------------------------------------------------------------------- MLDL_CHECKS env var


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("off", False),
        ("no", False),
        ("", False),
        ("2", False),
        (None, False),
    ],
)
def test_env_flag_parsing(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("MLDL_CHECKS", raising=False)
    else:
        monkeypatch.setenv("MLDL_CHECKS", value)
    assert _checks._env_flag() is expected


_PROBE = textwrap.dedent(
    """
    import torch, mldl
    print("enabled", mldl.checks_enabled())
    x, y = torch.rand(4, 3) + 0.5, torch.tensor([0, 1, 2, 0])
    try:
        mldl.losses.nll(x, y)
        print("nll accepted")
    except ValueError as e:
        print("nll refused:", e)
    """
)


def _run_fresh(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MLDL_CHECKS"}
    if env_value is not None:
        env["MLDL_CHECKS"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_env_var_read_at_import_on():
    out = _run_fresh("1")
    assert "enabled True" in out
    assert "nll refused: nll: input: expected log-probabilities" in out


def test_env_var_read_at_import_off():
    out = _run_fresh(None)
    assert "enabled False" in out
    assert "nll accepted" in out


def test_env_var_changed_after_import_has_no_effect(monkeypatch):
    monkeypatch.setenv("MLDL_CHECKS", "0")
    mldl.checks(True)
    assert mldl.checks_enabled()  # only mldl.checks() changes the setting after import


# ------------------------------------------------------------------------- cheap helpers


def test_tensor_and_floating():
    with pytest.raises(TypeError, match=r"^f: x: expected a torch\.Tensor, got list \[1, 2\]"):
        _checks.tensor([1, 2], "x", "f")
    with pytest.raises(TypeError, match=r"^f: x: expected a floating-point tensor, got int64"):
        _checks.floating(torch.ones(2, dtype=torch.long), "x", "f")
    with pytest.raises(TypeError, match=r"^f: x: expected a torch\.Tensor, got NoneType None"):
        _checks.floating(None, "x", "f")
    t = torch.ones(2, dtype=torch.float16)
    assert _checks.floating(t, "x", "f") is t
    # Without a function name the message starts with the argument.
    with pytest.raises(TypeError, match=r"^x: expected a torch\.Tensor"):
        _checks.tensor(3, "x")


def test_same_shape_and_broadcastable():
    a, b = torch.zeros(4, 1), torch.zeros(4)
    with pytest.raises(
        ValueError, match=r"^f: b must have the same shape as a: a is \(4, 1\), b is \(4,\)"
    ):
        _checks.same_shape(a, b, ("a", "b"), "f")
    _checks.broadcastable(torch.zeros(4, 3), torch.zeros(3), ("input", "w"), "f")
    _checks.broadcastable(torch.zeros(4, 3), torch.zeros(4, 1), ("input", "w"), "f")
    with pytest.raises(ValueError, match=r"^f: w of shape \(4,\) does not broadcast"):
        _checks.broadcastable(torch.zeros(4, 3), torch.zeros(4), ("input", "w"), "f")
    # Broadcasting that would enlarge the input is refused.
    with pytest.raises(ValueError, match=r"^f: w of shape \(2, 4, 3\)"):
        _checks.broadcastable(torch.zeros(4, 3), torch.zeros(2, 4, 3), ("input", "w"), "f")


def test_ndim_and_one_of():
    with pytest.raises(ValueError, match=r"^f: x: expected a 1 or 2-dimensional tensor"):
        _checks.ndim(torch.zeros(1, 1, 1), (1, 2), "x", "f")
    _checks.ndim(torch.zeros(3), (1, 2), "x", "f")
    with pytest.raises(ValueError, match=r"^f: mode: expected one of 'a', 'b', got 'c'"):
        _checks.one_of("c", ("a", "b"), "mode", "f")


def test_same_device():
    _checks.same_device({"a": torch.zeros(1), "b": None, "c": torch.zeros(1)}, "f")
    with pytest.raises(ValueError, match=r"^f: .*a on cpu, b on meta"):
        _checks.same_device({"a": torch.zeros(1), "b": torch.zeros(1, device="meta")}, "f")


@pytest.mark.parametrize(
    ("kwargs", "value", "interval"),
    [
        (dict(low=0.0), -1.0, r"\[0, inf\)"),
        (dict(low=0.0, low_open=True), 0.0, r"\(0, inf\)"),
        (dict(low=0.0, high=1.0), 1.5, r"\[0, 1\]"),
        (dict(low=-1.0, high=1.0, high_open=True), 1.0, r"\[-1, 1\)"),
        (dict(), float("nan"), r"\(-inf, inf\)"),
    ],
)
def test_number_ranges(kwargs, value, interval):
    with pytest.raises(ValueError, match=rf"^f: p: expected a value in {interval}, got "):
        _checks.number(value, "p", "f", **kwargs)


def test_number_types():
    assert _checks.number(2, "p", "f") == 2.0
    assert _checks.number(torch.tensor(0.5), "p", "f") == 0.5
    for bad in (True, "1", None, [1.0], torch.ones(2)):
        with pytest.raises(TypeError, match=r"^f: p: expected a real number, got "):
            _checks.number(bad, "p", "f")
    # A 0-d tensor that requires grad is not silently detached.
    with pytest.raises(TypeError, match=r"^f: p: expected a real number"):
        _checks.number(torch.tensor(1.0, requires_grad=True), "p", "f")


def test_number_accepts_numpy_scalars():
    """Fixed bug: np.float32 / np.int64 are real numbers but were refused ("expected a real
    number, got float32 np.float32(0.5)"); np.float64 passed only because it subclasses
    float."""
    import numpy as np

    assert _checks.number(np.float64(0.5), "p", "f") == 0.5
    assert _checks.number(np.float32(0.5), "p", "f") == 0.5
    assert _checks.number(np.int64(2), "p", "f") == 2.0


def test_class_weight():
    x = torch.zeros(2, 3)
    _checks.class_weight(None, 3, x, "f")
    _checks.class_weight(torch.ones(3), 3, x, "f")
    with pytest.raises(ValueError, match=r"^f: weight: expected a 1-D tensor .* \(3\)"):
        _checks.class_weight(torch.ones(4), 3, x, "f")
    with pytest.raises(TypeError, match=r"^f: weight: expected a floating-point tensor"):
        _checks.class_weight(torch.ones(3, dtype=torch.long), 3, x, "f")


def test_class_indices():
    out = _checks.class_indices(torch.tensor([0, 2], dtype=torch.uint8), 3, "t", "f")
    assert out.dtype == torch.int64
    out = _checks.class_indices(torch.tensor([0, -100]), 3, "t", "f", ignore_index=-100)
    assert out.tolist() == [0, -100]
    for dtype in (torch.float32, torch.bool, torch.complex64):
        with pytest.raises(TypeError, match=r"^f: t: expected integer class indices, got "):
            _checks.class_indices(torch.zeros(2, dtype=dtype), 3, "t", "f")
    with pytest.raises(
        ValueError, match=r"^f: t: expected class indices in \[0, 2\], got 2 value\(s\) outside"
    ):
        _checks.class_indices(torch.tensor([3, 0, -1]), 3, "t", "f")
    with pytest.raises(ValueError, match=r"^f: t: .* or ignore_index=-100, got 1 .* e\.g\. -1"):
        _checks.class_indices(torch.tensor([-100, -1]), 3, "t", "f", ignore_index=-100)
    _checks.class_indices(torch.zeros(0, dtype=torch.long), 3, "t", "f")  # empty: fine


def test_class_indices_range_check_runs_with_checks_off_on_cpu():
    with mldl.checks(False), pytest.raises(ValueError, match=r"^f: t: expected class indices"):
        _checks.class_indices(torch.tensor([5]), 3, "t", "f")


# ------------------------------------------------------------------------- value helpers


def test_values_is_a_no_op_with_checks_off():
    with mldl.checks(False):
        _checks.values(torch.tensor([float("nan"), 5.0]), _checks.PROBABILITIES, "x", "f")
        _checks.not_probabilities(torch.full((4, 2), 0.5), "x", "f")


def test_values_nan_and_inf_positions():
    x = torch.zeros(2, 3)
    x[1, 2] = float("nan")
    with pytest.raises(
        ValueError, match=r"^f: x: expected finite real values, got NaN at index \(1, 2\)"
    ):
        _checks.values(x, _checks.REAL, "x", "f")
    with pytest.raises(
        ValueError, match=r"^f: x: expected finite real values, got \+inf at index 1$"
    ):
        _checks.values(torch.tensor([0.0, float("inf")]), _checks.REAL, "x", "f")
    with pytest.raises(ValueError, match=r"^f: x: expected finite real values, got -inf at"):
        _checks.values(torch.tensor([-float("inf")]), _checks.REAL, "x", "f")


@pytest.mark.parametrize(
    ("domain", "ok", "bad"),
    [
        (_checks.LOGITS, [-float("inf"), -3.0, 7.0], [float("inf")]),
        (_checks.BINARY_LOGITS, [float("inf"), -float("inf"), 0.0], [float("nan")]),
        (_checks.PROBABILITIES, [0.0, 0.5, 1.0], [1.01]),
        (_checks.PROBABILITIES, [0.0, 1.0], [-0.01]),
        (_checks.LOG_PROBABILITIES, [-float("inf"), -1.0, 0.0, 5e-5], [1e-3]),
        (_checks.NONNEGATIVE, [0.0, 3.0], [-1e-9]),
        (_checks.NONNEGATIVE, [0.0], [float("inf")]),
        (_checks.SIGNS, [1.0, -1.0], [0.0]),
        (_checks.SIGNS, [1.0], [0.5]),
        (_checks.REAL, [-1e30, 1e30], [-float("inf")]),
    ],
)
def test_domains(domain, ok, bad):
    _checks.values(torch.tensor(ok), domain, "x", "f")
    _checks.values(torch.tensor(ok, dtype=torch.float64), domain, "x", "f")
    with pytest.raises(ValueError, match=rf"^f: x: expected {re.escape(domain.hint)}, got "):
        _checks.values(torch.tensor(ok + bad), domain, "x", "f")


def test_values_of_integer_tensors():
    _checks.values(torch.tensor([1, -1]), _checks.SIGNS, "y", "f")
    with pytest.raises(ValueError, match=r"^f: y: expected labels 1 or -1, got 0"):
        _checks.values(torch.tensor([1, 0]), _checks.SIGNS, "y", "f")


def test_values_hints():
    """The input domains of bce and of nll/kl_div/ctc say what was probably meant; the plain
    domains (used for targets and other arguments) give no advice."""
    with pytest.raises(ValueError, match=r"these look like probabilities or logits: pass log_s"):
        _checks.values(torch.tensor([0.2, 0.8]), _checks.LOG_PROBABILITY_INPUT, "x", "f")
    with pytest.raises(ValueError, match=r"^f: x: .*got values up to 1\.5$"):  # no hint
        _checks.values(torch.tensor([0.2, 1.5]), _checks.LOG_PROBABILITIES, "x", "f")
    with pytest.raises(ValueError, match=r"these look like logits: use bce_with_logits"):
        _checks.values(torch.tensor([-0.2, 0.8]), _checks.PROBABILITY_INPUT, "x", "f")
    with pytest.raises(ValueError, match=r"^f: x: .*got values down to -0\.2$"):  # no hint
        _checks.values(torch.tensor([-0.2, 0.8]), _checks.PROBABILITIES, "x", "f")


def test_not_probabilities():
    probs = torch.rand(4, 3).softmax(1)
    with pytest.raises(ValueError, match=r"^f: x: expected logits, got what look like "):
        _checks.not_probabilities(probs, "x", "f", class_dim=1)
    _checks.not_probabilities(probs.T.contiguous(), "x", "f", class_dim=1)  # rows != 1
    _checks.not_probabilities(torch.full((4, 3), 0.5), "x", "f", class_dim=1)
    _checks.not_probabilities(probs - 0.5, "x", "f", class_dim=1)  # outside [0, 1]
    inf_row = probs.clone()
    inf_row[0, 0] = float("inf")
    _checks.not_probabilities(inf_row, "x", "f", class_dim=1)
    _checks.not_probabilities(torch.rand(15), "x", "f", class_dim=None)
    with pytest.raises(ValueError, match=r"every value lies in \[0, 1\]\)"):
        _checks.not_probabilities(torch.rand(16), "x", "f", class_dim=None)
    _checks.not_probabilities(torch.zeros(0, 3), "x", "f")


def test_values_on_empty_tensors():
    _checks.values(torch.zeros(0), _checks.SIGNS, "x", "f")
    _checks.values(torch.full((2,), -float("inf")), _checks.LOGITS, "x", "f")  # nothing finite
