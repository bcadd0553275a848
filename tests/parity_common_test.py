"""What every parity component shares (iptnet_jax.parity.common): the comparison rows and their criteria, the
pass / fail check the tests use, and the report's exit status."""

import numpy as np
import pytest

from iptnet_jax import parity


def test_compare_holds_the_worst_leaf_to_the_criterion():
  ref = {"a": np.array([1.0, 2.0]), "b": {"c": np.array([0.5])}}
  ours = {"a": np.array([1.0, 2.001]), "b": {"c": np.array([0.6])}}
  row = parity.compare("x", ours, ref, 1e-3, "rel")
  assert row.max_abs == pytest.approx(0.1) and row.rel == pytest.approx(0.2)  # b/c: 0.1 / 0.5
  assert row.detail == "worst leaf b/c" and not row.passed
  assert parity.compare("x", ref, ref, 0.0).passed
  big = parity.compare("y", np.array([1000.5]), np.array([1000.0]), 1e-3, "max-abs/scale")
  assert big.error == pytest.approx(0.5 / 1000.0) and big.passed  # 0.5 absolute, at a magnitude of 1000
  assert not parity.compare("y", np.array([1000.5]), np.array([1000.0]), 1e-3, "max-abs").passed
  assert not parity.Row("z", float("nan"), 0.0, 1.0, "max-abs").passed  # NaN never passes
  with pytest.raises(ValueError, match=r"x: different leaves \['d'\]"):
    parity.compare("x", {**ours, "d": np.zeros(1)}, ref, 1e-3)
  with pytest.raises(ValueError, match=r"x/a: shapes \(3,\) vs \(2,\)"):
    parity.compare("x", {**ours, "a": np.zeros(3)}, ref, 1e-3)


def test_assert_all_pass_names_the_rows_out_of_tolerance():
  good = parity.Row("a", 1e-7, 1e-7, 1e-5, "max-abs")
  parity.assert_all_pass([good])
  with pytest.raises(AssertionError, match="b .*FAIL"):
    parity.assert_all_pass([good, parity.Row("b", 1e-3, 1e-3, 1e-5, "max-abs"),
                            parity.Row("c", float("nan"), 0.0, 1e-5, "max-abs")])


def test_report_exits_nonzero_only_when_a_row_fails(torch, monkeypatch, capsys):
  within = lambda: [parity.Row("fake.within", 1e-6, 1e-6, 1e-5, "max-abs")]
  # 2e-5 relative error passes a max-abs criterion of 1e-5 only if the wrong error were held to it.
  outside = lambda: [parity.Row("fake.outside", 1e-6, 2e-5, 1e-5, "rel")]
  monkeypatch.setitem(parity.COMPONENTS, "fake.within", within)
  monkeypatch.setitem(parity.COMPONENTS, "fake.outside", outside)
  assert parity.main(["--only", "fake.within"]) == 0
  assert "1/1 within tolerance" in capsys.readouterr().out
  assert parity.main(["--only", "fake.within,fake.outside"]) == 1
  out = capsys.readouterr().out
  assert "FAIL" in out and "FAILED: ['fake.outside']" in out
  with pytest.raises(KeyError, match="unknown parity components"):
    parity.main(["--only", "no.such"])
