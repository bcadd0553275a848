"""Checkpoints (iptnet_jax.checkpoint): the best parameters and the training state round trip through orbax, one
checkpoint kept per folder, and a save that cannot fit is refused before it starts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax import checkpoint, fileio


def _params(scale: float) -> dict:
  return {"dense": {"kernel": jnp.full((3, 4), scale, jnp.float32), "bias": jnp.arange(4, dtype=jnp.float32)},
          "count": jnp.asarray(7, jnp.int32)}


def test_best_checkpoint_keeps_the_last_save_and_restores_it(tmp_path):
  best = checkpoint.BestCheckpoint(tmp_path / "split_0")
  try:
    best.save(1, _params(1.0), {"epoch": 1, "score": 0.25})
    best.save(3, _params(3.0), {"epoch": 3, "score": 0.5})
    assert best.latest_step() == 3
    assert sorted(p.name for p in (tmp_path / "split_0").iterdir() if p.name.isdigit()) == ["3"]  # keep=1
    params, metadata = best.restore(jax.eval_shape(lambda: _params(0.0)))
    jax.tree.map(np.testing.assert_array_equal, params, _params(3.0))
    assert metadata == {"epoch": 3, "score": 0.5}
    saved, _ = best.restore_saved()  # without the structure in advance: host arrays as saved
    np.testing.assert_array_equal(saved["dense"]["kernel"], np.full((3, 4), 3.0, np.float32))
    best.discard_after(2)  # a save after the step an interrupted run recorded
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
      best.restore_saved()
  finally:
    best.close()


def test_state_checkpoint_restores_state_and_keys_and_reads_the_record_alone(tmp_path):
  states = checkpoint.StateCheckpoint(tmp_path / "state")
  try:
    assert states.record() is None
    state = {"params": _params(2.0), "rng": jax.random.key(5), "step": jnp.asarray(11)}
    states.save(state, {"phase": 2, "history": [{"score": 0.5}]})
    like = {"params": _params(0.0), "rng": jax.random.key(0), "step": jnp.asarray(0)}
    restored = states.restore_state(like)
    jax.tree.map(np.testing.assert_array_equal, restored["params"], state["params"])
    assert jax.random.key_impl(restored["rng"]) == jax.random.key_impl(state["rng"])
    np.testing.assert_array_equal(jax.random.key_data(restored["rng"]), jax.random.key_data(state["rng"]))
    assert int(restored["step"]) == 11
    assert states.record() == {"phase": 2, "history": [{"score": 0.5}]}
    states.save(None, {"finished": [0]})  # between units: the record only, replacing the previous save
    assert states.record() == {"finished": [0]}
  finally:
    states.close()


def test_a_save_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
  best = checkpoint.BestCheckpoint(tmp_path / "split_0")
  try:
    usage = checkpoint.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: usage._replace(free=100 * 1024))
    with pytest.raises(fileio.WorkdirWriteError, match=r"split_0: \[Errno 28\] No space left on device \(the "
                       r"checkpoint needs about 0\.\d MiB, 0\.1 MiB free\)"):
      best.save(1, _params(1.0), {"epoch": 1})
    assert best.latest_step() is None
  finally:
    best.close()
