"""iPTNet training end to end on the synthetic demo data, the schedule, and the ablation switches."""

import importlib
import json
from pathlib import Path

import pytest

from iptnet_jax import train
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.iptnet import train as iptnet_train

import pinned

REPO = Path(__file__).resolve().parents[1]


def load_config(name, arg=""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def test_schedule_warms_up_then_alternates_non_mixing_rounds():
  S, L, LD, SD = step_lib.SM_ONLY, step_lib.LM_ONLY, step_lib.LM_DATA, step_lib.SM_DATA
  assert iptnet_train.schedule(4, sm_warmup_epochs=2, lm_warmup_epochs=1, use_lm=True) == [L, S, S, LD, SD, LD, SD]
  assert iptnet_train.schedule(3, sm_warmup_epochs=5, lm_warmup_epochs=0, use_lm=True) == [S, S, S]
  assert iptnet_train.schedule(3, sm_warmup_epochs=0, lm_warmup_epochs=2, use_lm=False) == [S, S, S]
  # Fig. 5's baseline: the LM alone gets as many LM passes as the joint schedule (warm-up + one per round).
  joint = iptnet_train.schedule(4, sm_warmup_epochs=2, lm_warmup_epochs=1, use_lm=True)
  alone = iptnet_train.schedule(4, sm_warmup_epochs=2, lm_warmup_epochs=1, use_lm=True, joint=False)
  assert alone == [L, L, L] and len(alone) == joint.count(L) + joint.count(LD)


@pytest.mark.parametrize("variant, name, flags", [
    ("", "iPTNet", (True, True, True)), ("P", "iPTNet-P", (True, False, True)),
    ("T", "iPTNet-T", (True, True, False)), ("L", "iPTNet-L (no LM)", (False, True, True)),
])
def test_ablation_variants(variant, name, flags):
  config = load_config("tvsum", variant or "iptnet")
  assert (config.iptnet.use_lm, config.iptnet.propagation, config.iptnet.teaching) == flags
  assert iptnet_train.ablation_name(config) == name
  with pytest.raises(ValueError, match="unknown variant"):
    load_config("tvsum", "X")


@pytest.mark.slow
def test_smoke_run_follows_the_schedule_and_reports_both_tasks(tmp_path):
  pinned.run_smoke_on_one_cpu("iptnet_demo", tmp_path)  # the command line, on one CPU: pinned.py says why
  result, records = pinned.read_run(tmp_path)
  assert result["method"] == "iPTNet" and result["lm_synthetic"] and len(result["splits"]) == 2
  split0 = [r["source"] for r in records if r["split"] == 0]
  assert split0 == ["lm_only", "sm_only", "lm_data", "sm_data", "lm_data", "sm_data"]
  for record in records:
    assert record["steps"] > 0 and record["loss_total"] > 0
    if record["source"] == "lm_data":
      assert record["loss_teach_sm"] > 0 and record["loss_consistency"] > 0 and record["loss_sm_supervised"] == 0
    if record["source"] == "sm_data":
      assert record["loss_teach_lm"] > 0 and record["loss_lm_supervised"] == 0
      assert 0 <= record["student_test_score"] <= 1 and 0 <= record["teacher_test_score"] <= 1
  for split in result["splits"]:
    assert split["selected_model"] in ("student", "teacher")
    assert set(split["lm_test"]) == {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}
  assert (tmp_path / "checkpoints" / "split_1").is_dir()
  pinned.assert_matches_pinned("iptnet_demo", result, records)  # the same numbers as before the shared loop


def test_mismatched_feature_widths_are_one_clear_error(tmp_path):
  config = load_config("iptnet_demo", "smoke")
  config.lm.data.synthetic.dim = 32  # the SM's synthetic videos are 64-d
  with pytest.raises(ValueError, match="feature widths differ"):
    train.train_and_evaluate(config, tmp_path)


def test_lm_checkpoint_start_is_refused_for_iptnet_runs(tmp_path):
  # Only task='lm' ports an upstream VSLNet checkpoint; an iPTNet run must not silently ignore the path.
  config = load_config("iptnet_demo", "smoke")
  config.lm.init_from = str(tmp_path / "vslnet_300.t7")
  with pytest.raises(ValueError, match=r"config\.lm\.init_from=.*only task='lm'"):
    train.train_and_evaluate(config, tmp_path)
  assert not any(tmp_path.iterdir())  # refused before anything is written


@pytest.mark.slow
def test_validation_selection_beside_dsnet_convention_and_rank_correlation(tmp_path, monkeypatch):
  # Synthetic videos have no per-user step scores: give each evaluated video three, so tau / rho are computed.
  from iptnet_jax.datasets import summarization
  import dataclasses
  import numpy as np

  load = summarization.load_split_videos

  def with_user_scores(split_list):
    videos = load(split_list)
    rng = np.random.default_rng(0)
    return {ref: dataclasses.replace(v, user_scores=rng.random((v.num_steps, 3)).astype(np.float32))
            for ref, v in videos.items()}

  monkeypatch.setattr(summarization, "load_split_videos", with_user_scores)
  config = load_config("iptnet_demo", "smoke,L")
  config.data.val_fraction = 0.5
  result = train.train_and_evaluate(config, tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  for split in result["splits"]:
    mine = [r for r in rows if r["split"] == split["index"]]
    assert split["selection"] == "val" and split["num_val_videos"] >= 1 and split["num_train_videos"] >= 1
    # The val choice: the best val score of student / teacher over the epochs (first on ties) ...
    models = ("student", "teacher")
    by_val = max(((r[f"{m}_val_score"], -r["epoch"], -k) for r in mine for k, m in enumerate(models)))
    epoch, model = -by_val[1], models[-by_val[2]]
    chosen = next(r for r in mine if r["epoch"] == epoch)
    assert (split["selected_epoch"], split["selected_model"]) == (epoch, model)
    assert split["test_score"] == pytest.approx(chosen[f"{model}_test_score"])
    assert split["test_tau"] == pytest.approx(chosen[f"{model}_test_tau"])
    # ... and DSNet's convention beside it: the best test score over every evaluation and model.
    assert split["dsnet_test_score"] == pytest.approx(max(r[f"{m}_test_score"] for r in mine
                                                          for m in ("student", "teacher")))
    assert split["dsnet_test_score"] >= split["test_score"]
    for key in ("test_tau", "test_rho", "random_tau", "random_rho"):
      assert -1 <= split[key] <= 1
  assert result["mean_dsnet_test_score"] >= result["mean_test_score"]
