"""summarize / localize / export / plots on generated runs: workdirs written the way the trainers write them
(config.json + orbax checkpoints of freshly initialised models, no training), features and annotations generated
here. The trained end-to-end path (main -> plots -> the three commands) is tests/usage_e2e_test.py (slow)."""

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from configs import quickstart
from iptnet_jax import export, localize, plots, run_dir, run_models, summarize
from iptnet_jax.datasets import charades_sta, eccv16, text
from iptnet_jax.vsumm import evaluate as vsumm_eval

REPO = Path(__file__).resolve().parents[1]
DIM = 16
WORDS = ["a", "person", "opens", "the", "door", "closes", "window", "sits", "on", "chair", "is", "eating", "food"]
SENTENCES = ["a person opens the door.", "the person closes the window.", "a person sits on the chair.",
             "person is eating food.", "a person opens the window.", "the person sits on a chair."]


def _config(task: str):
  config = quickstart.get_config("smoke")
  config.data.synthetic.feature_dim = DIM
  config.model.attention_dim = DIM
  config.lm.data.synthetic.dim = DIM
  config.lm.model.dim = 8
  config.lm.model.num_heads = 2
  config.lm.model.char_dim = 4
  if task == "sm":  # an SM run's config: the SM fields, task 'sm'
    config.task = "sm"
  return config


def _write_annotations(root: Path) -> None:
  """Charades-STA's files for a few generated videos, and a GloVe text file of the words."""
  (root / "charades").mkdir(parents=True)
  for split, vids in (("train", ["V1", "V2", "V3"]), ("test", ["V4"])):
    lines = [f"{vid} {1.0 + i}  {6.0 + i}##{SENTENCES[(k + i) % len(SENTENCES)]}"
             for k, vid in enumerate(vids) for i in range(2)]
    (root / "charades" / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
  (root / "charades" / "charades.json").write_text(json.dumps(
      {f"V{i}": {"subset": "x", "duration": 30.0} for i in range(1, 5)}))
  rng = np.random.default_rng(0)
  (root / "glove.txt").write_text("".join(f"{w} " + " ".join(f"{x:.5f}" for x in rng.normal(size=6)) + "\n"
                                          for w in WORDS + ["."]))


def _vocabulary(root: Path):
  annotations = charades_sta.load_split_annotations(root / "charades")
  words, chars = text.count_tokens([a.words for s in charades_sta.SPLITS for a in annotations[s]])
  glove, dim = text.load_glove(root / "glove.txt", keep=set(words))
  word_vocab, vectors = text.build_word_vocab(words, glove, dim)
  return word_vocab, text.build_char_vocab(chars), vectors


def make_workdir(root: Path, task: str = "iptnet", splits=(0,)) -> Path:
  """A workdir as a finished run leaves it: config.json, run.json, results.json, selected checkpoints."""
  import dataclasses

  import jax

  from iptnet_jax import checkpoint
  from iptnet_jax.lm import train as lm_train
  from iptnet_jax.lm.model import init_variables
  from iptnet_jax.sm import train as sm_train

  workdir = root / f"run_{task}"
  data = root / "data"
  if not data.exists():
    _write_annotations(data)
  config = _config(task)
  config.lm.data.annotation_dir = str(data / "charades")
  config.lm.data.glove_path = str(data / "glove.txt")
  workdir.mkdir(parents=True)
  (workdir / run_dir.CONFIG_FILE).write_text(json.dumps(run_dir.config_as_dict(config)))
  (workdir / run_dir.RUN_FILE).write_text(json.dumps({"run_id": "test", "resumes": 0}))
  (workdir / "results.json").write_text("{}")
  model = dataclasses.replace(sm_train.make_model(config), with_shift_head=task == "iptnet")
  for split in splits:
    params = jax.device_get(sm_train.init_params(model, jax.random.key(split), DIM))
    best = checkpoint.BestCheckpoint(workdir / "checkpoints" / f"split_{split}")
    best.save(3, params, {"epoch": 3, "model": "teacher", "score": 0.5})
    best.close()
    if task == "iptnet":
      _, char_vocab, vectors = _vocabulary(data)
      lm = lm_train.make_model(config.lm, vectors, len(char_vocab), DIM)
      variables = init_variables(lm, jax.random.key(10 + split), vectors)
      run_models.save_lm_student(workdir / "checkpoints" / f"split_{split}", variables, {"epoch": 2, "steps": 9})
  return workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("usage")
  return {"iptnet": make_workdir(root, "iptnet", splits=(0, 1)), "sm": make_workdir(root, "sm"), "root": root}


def _features(path: Path, steps: int = 50, dim: int = DIM, seed: int = 0) -> Path:
  np.save(path, np.random.default_rng(seed).normal(size=(steps, dim)).astype(np.float32))
  return path


def _error_line(capsys, main, argv) -> str:
  assert main(argv) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err, err
  return err


# ------------------------------------------------------------------------------------------------ summarize

def test_summarize_npy_picks_the_keyshots_the_evaluation_would(runs, tmp_path):
  """summary.json's keyshots are DSNet-AF's summary of the SM's own predictions (sm.inference + predict_summary_af),
  within 15 % of the frames, and every step/shot field lines up with the video."""
  from iptnet_jax.sm import inference

  features = _features(tmp_path / "clip.npy", steps=50)
  out = tmp_path / "out"
  assert summarize.main([f"--workdir={runs['iptnet']}", f"--features={features}", f"--out={out}", "--split=1",
                         "--shots=uniform", "--n_frames=1500", "--fps=25"]) == 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["source"]["split"] == 1 and summary["source"]["sm_checkpoint"]["model"] == "teacher"
  (video,) = summary["videos"]
  steps = video["steps"]
  assert video["n_frames"] == 1500 and steps["frame"] == [i * 30 for i in range(50)]
  assert steps["seconds"][1] == pytest.approx(30 / 25)
  assert {"sm_importance", "lm_importance", "propagated", "summary_score"} <= set(steps)
  assert all(len(v) == 50 for v in steps.values())

  run = run_models.load_run(runs["iptnet"], 1)
  preds = inference.predict_videos(inference.make_predict_fn(run.sm.model), run.sm.params,
                                   [eccv16.SummVideo("clip", np.load(features), np.zeros(50, np.float32),
                                                     np.zeros((1, 2), np.int64), np.ones(1, np.int64), 1500,
                                                     np.arange(50) * 30, None)], 1, (64,))["clip"]
  cps = np.array([s["frames"] for s in video["shots"]])
  assert len(cps) == 10 and cps[0].tolist() == [0, 149]  # --shots=uniform: 150 frames each
  expected = vsumm_eval.predict_summary_af(preds["cls_prob"], preds["offsets"], preds["ctr_prob"], cps, 1500,
                                           cps[:, 1] - cps[:, 0] + 1, np.arange(50) * 30)
  selected = np.zeros(1500, bool)
  for first, last in video["keyshots"]["frames"]:
    selected[first:last + 1] = True
  np.testing.assert_array_equal(selected, expected)
  assert 0 < selected.sum() <= 0.15 * 1500
  assert [s["selected"] for s in video["shots"]] == [bool(expected[a]) for a, _ in cps]
  np.testing.assert_allclose(steps["sm_importance"], preds["cls_prob"], atol=1e-5)
  assert (out / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarize_h5_keeps_its_shots_scores_users_and_draws_one_row_per_map(runs, tmp_path):
  from iptnet_jax.datasets.builders import synthetic_vsumm

  h5_path, _ = synthetic_vsumm.write_synthetic_dataset(tmp_path / "syn", synthetic_vsumm.SyntheticSpec(
      num_videos=5, feature_dim=DIM, min_steps=30, max_steps=40, num_users=3, num_splits=1))
  with h5py.File(h5_path) as h5:
    keys = sorted(h5.keys())[:2]
    change_points = h5[keys[0]]["change_points"][()]
  for task in ("iptnet", "sm"):
    out = tmp_path / task
    assert summarize.main([f"--workdir={runs[task]}", f"--features={h5_path}", f"--keys={','.join(keys)}",
                           f"--out={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [v["video"] for v in summary["videos"]] == keys
    first = summary["videos"][0]
    assert first["shots_from"] == "the h5 file's change_points"
    assert [s["frames"] for s in first["shots"]] == change_points.tolist()
    assert 0 <= first["fscore"]["value"] <= 1 and first["fscore"]["users"] == 3
    assert "gtscore" in first["steps"]
    assert ("lm_importance" in first["steps"]) == (task == "iptnet")
    assert [label for label, _ in summarize.plot_rows(first)] == (
        ["SM importance", "LM (query-free)", "propagated (PM)", "ground truth"] if task == "iptnet" else
        ["SM importance", "ground truth"])
  import matplotlib.image

  tall = matplotlib.image.imread(tmp_path / "iptnet" / f"importance_{keys[0]}.png").shape[0]
  short = matplotlib.image.imread(tmp_path / "sm" / f"importance_{keys[0]}.png").shape[0]
  assert tall > 1.4 * short  # four rows against two


def test_summarize_kts_shots_follow_the_eccv16_count(runs, tmp_path):
  features = _features(tmp_path / "v.npy", steps=60)
  out = tmp_path / "out"
  assert summarize.main([f"--workdir={runs['sm']}", f"--features={features}", f"--out={out}"]) == 0
  (video,) = json.loads((out / "summary.json").read_text())["videos"]
  assert video["n_frames"] == 15 * 60 and video["shots_from"].startswith("KTS")
  assert len(video["shots"]) == math.ceil(900 / 150)
  frames = np.array([s["frames"] for s in video["shots"]])
  assert frames[0, 0] == 0 and frames[-1, 1] == 899 and np.all(frames[1:, 0] == frames[:-1, 1] + 1)


def test_windowed_kts_tiles_the_frames_and_equals_kts_on_short_videos():
  from iptnet_jax.vsumm import kts

  features = np.random.default_rng(1).normal(size=(90, 8))
  picks = np.arange(90) * 15
  np.testing.assert_array_equal(summarize.windowed_kts_shots(features, picks, 1350, 9, window=100),
                                kts.kts_shots(features, picks, 1350, n_shots=9)[0])
  shots = summarize.windowed_kts_shots(features, picks, 1350, 9, window=40)  # 3 windows of 30 steps
  assert shots[0, 0] == 0 and shots[-1, 1] == 1349 and np.all(shots[1:, 0] == shots[:-1, 1] + 1)
  assert len(shots) == 9 and {450, 900} <= set(shots[:, 0].tolist())  # the windows start shots


def test_summarize_bad_input_is_one_line_naming_the_file_or_flag(runs, tmp_path, capsys):
  run = f"--workdir={runs['iptnet']}"
  out = f"--out={tmp_path / 'out'}"
  nan = _features(tmp_path / "nan.npy")
  array = np.load(nan)
  array[7, 3] = np.nan
  np.save(nan, array)
  (tmp_path / "empty.npy").write_bytes(b"")
  wide = _features(tmp_path / "wide.npy", dim=DIM + 4)
  ok = _features(tmp_path / "ok.npy")
  h5_path = tmp_path / "one.h5"
  with h5py.File(h5_path, "w") as h5:
    h5.create_group("video_1")
  shots = tmp_path / "shots.json"
  shots.write_text(json.dumps([[0, 100], [200, 749]]))  # frames 101-199 in no shot
  cases = [
      ([run, f"--features={nan}", out], rf"{nan}: row 7 \(and 0 more\) holds NaN/inf"),
      ([run, f"--features={tmp_path / 'empty.npy'}", out], r"empty.npy: empty file"),
      ([run, f"--features={wide}", out], rf"{wide}: features of width {DIM + 4}, but the run .* width {DIM}"),
      ([run, f"--features={h5_path}", "--keys=video_9", out], r"--keys: .*one.h5 has no video 'video_9'; it has 1: video_1"),
      ([run, f"--features={ok}", "--split=4", out], r"--split=4: no checkpoint .*split_4; this run has split\(s\) 0, 1"),
      ([f"--workdir={tmp_path}", f"--features={ok}", out], rf"--workdir={tmp_path}: no config.json"),
      ([run, f"--features={ok}", f"--shots={shots}", out], r"--shots=.*shots.json.*change_points"),
      ([run, f"--features={ok}", "--n_frames=20", out], r"--n_frames=20: expected at least one frame per step"),
  ]
  for argv, pattern in cases:
    import re

    assert re.search(pattern, _error_line(capsys, summarize.main, argv)), (argv, pattern)
  assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ localize

def test_localize_ranks_distinct_spans_led_by_vslnets_prediction(runs, tmp_path):
  import jax

  from iptnet_jax.lm import span
  from iptnet_jax.lm import train as lm_train

  features = _features(tmp_path / "v.npy", steps=40, seed=3)
  out = tmp_path / "loc"
  assert localize.main([f"--workdir={runs['iptnet']}", f"--features={features}", "--query=A person opens the zebra",
                        "--duration=20", f"--out={out}"]) == 0
  result = json.loads((out / "spans.json").read_text())
  assert result["words"] == ["a", "person", "opens", "the", "zebra"] and result["unknown_words"] == ["zebra"]
  spans = result["spans"]
  assert len(spans) == 5 and [s["rank"] for s in spans] == [1, 2, 3, 4, 5]
  assert spans[0]["score"] >= max(s["score"] for s in spans[1:])
  for i, a in enumerate(spans):
    assert 0 <= a["seconds"][0] < a["seconds"][1] <= 20
    for b in spans[:i]:  # NMS at IoU 0.5 over clips
      (s1, e1), (s2, e2) = a["clips"], b["clips"]
      assert (min(e1, e2) - max(s1, s2) + 1) / (max(e1, e2) - min(s1, s2) + 1) < 0.5

  # The first span is what the LM trainer's evaluation would predict for this (video, query).
  run = run_models.load_run(runs["iptnet"], 0, need_lm=True)
  word_vocab, char_vocab = localize.query_vocabulary(run)
  _, word_ids, char_ids, _ = localize.encode("a person opens the zebra", word_vocab, char_vocab, 32)
  batch = localize.lm_batch(np.load(features), word_ids, char_ids, run.lm_config)
  start, end = jax.device_get(lm_train.make_predict_fn(run.lm.model)(run.lm.variables, batch))
  s, e = span.predict_spans(start[:, :40], end[:, :40], np.ones((1, 40)))
  assert spans[0]["clips"] == [int(s[0]), int(e[0])]
  assert len(result["highlight"]["value"]) == 40
  assert (out / "highlight.png").read_bytes()[:4] == b"\x89PNG"


def test_localize_refuses_runs_without_an_lm_and_changed_vocabularies(runs, tmp_path, capsys):
  features = _features(tmp_path / "v.npy")
  argv = [f"--features={features}", "--query=a door", f"--out={tmp_path / 'o'}"]
  assert "has no moment localizer" in _error_line(capsys, localize.main, [f"--workdir={runs['sm']}", *argv])
  config_path = runs["iptnet"] / "config.json"
  original = config_path.read_text()
  other = tmp_path / "glove.txt"
  other.write_text("".join(f"{w} " + " ".join(["0.5"] * 6) + "\n" for w in WORDS))
  config = json.loads(original)
  config["lm"]["data"]["glove_path"] = str(other)
  try:
    config_path.write_text(json.dumps(config))
    assert "is not the one the LM" in _error_line(capsys, localize.main, [f"--workdir={runs['iptnet']}", *argv])
    config = json.loads(original)  # vocab_scope='used' with max_videos=1: the first video's words only
    config["lm"]["data"].update(vocab_scope="used", max_videos=1)
    config_path.write_text(json.dumps(config))
    assert "is not the one the LM" in _error_line(capsys, localize.main, [f"--workdir={runs['iptnet']}", *argv])
  finally:
    config_path.write_text(original)
  for query, message in (("   ", "--query='   ': no words"), ("zebra giraffe", "none of its words (giraffe, zebra)")):
    assert message in _error_line(capsys, localize.main, [
        f"--workdir={runs['iptnet']}", f"--features={features}", f"--query={query}", f"--out={tmp_path / 'o'}"])


# ------------------------------------------------------------------------------------------------ export

def test_export_round_trips_through_the_upstream_shaped_torch_modules(runs, tmp_path, torch):
  """Exported files load with strict keys into the PyTorch restatements of DSNet-AF and VSLNet (upstream's module
  names), and those modules compute our outputs."""
  from iptnet_jax.parity.reference import dsnet_torch, vslnet_torch
  from iptnet_jax.sm import model as sm_model

  out = tmp_path / "torch"
  assert export.main([f"--workdir={runs['iptnet']}", "--to=torch", f"--out={out}"]) == 0
  manifest = json.loads((out / "export.json").read_text())
  assert [e["split"] for e in manifest["dsnet_af"]] == [0, 1]
  rng = np.random.default_rng(5)
  for entry in manifest["dsnet_af"]:
    assert entry["file"].endswith(f"checkpoint/synthetic_vsumm_splits.yml.{entry['split']}.pt")
    args = entry["upstream_args"]
    reference = dsnet_torch.DSNetAF(num_feature=args["num_feature"], num_hidden=args["num_hidden"],
                                    num_head=args["num_head"], dropout=0.0)
    reference.load_state_dict(torch.load(entry["file"]), strict=True)
    reference.eval()
    run = run_models.load_run(runs["iptnet"], entry["split"])
    x = rng.normal(size=(1, 37, DIM)).astype(np.float32)
    ours = sm_model.predictions(run.sm.model.apply({"params": run.sm.params}, x, np.ones((1, 37)), deterministic=True))
    with torch.no_grad():
      cls, loc, ctr = reference(torch.from_numpy(x))
    np.testing.assert_allclose(cls.numpy(), np.asarray(ours["cls_prob"][0]), atol=1e-5)
    np.testing.assert_allclose(loc.numpy(), np.asarray(ours["offsets"][0]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ctr.numpy(), np.asarray(ours["ctr_prob"][0]), atol=1e-5)
    shift = torch.load(out / "iptnet" / f"split_{entry['split']}.shift_head.pt")
    np.testing.assert_array_equal(shift["fc_shift.weight"].numpy(), np.asarray(run.sm.params["fc_shift"]["kernel"]).T)

  entry = manifest["vslnet"][0]
  configs = json.loads(Path(entry["configs"]).read_text())
  state = torch.load(entry["file"])
  assert entry["zero_keys_added"] == ["feature_encoder.pos_embedding.position_embeddings.weight"]
  run = run_models.load_run(runs["iptnet"], 0)
  m = run.lm.model
  reference = vslnet_torch.VSLNet(num_chars=configs["char_size"], word_dim=configs["word_dim"],
                                  char_dim=configs["char_dim"], visual_dim=configs["video_feature_dim"],
                                  dim=configs["dim"], num_heads=configs["num_heads"], max_pos_len=configs["max_pos_len"],
                                  drop_rate=0.0, glove_vectors=state["embedding_net.word_emb.glove_vec"],
                                  char_channels=m.char_channels, char_kernels=m.char_kernels, predictor=configs["predictor"])
  reference.load_state_dict(state, strict=True)
  reference.eval()
  word_vocab, char_vocab = localize.query_vocabulary(run)
  vocab = json.loads(Path(entry["vocab"]).read_text())
  assert vocab["word_to_id"] == word_vocab and vocab["char_to_id"] == char_vocab
  _, word_ids, char_ids, _ = localize.encode("a person opens the door", word_vocab, char_vocab, 32)
  video = rng.normal(size=(23, DIM)).astype(np.float32)
  batch = localize.lm_batch(video, word_ids, char_ids, run.lm_config)
  batch = {k: v[:, :23] if k in ("video", "video_mask") else v[:, :len(word_ids)] for k, v in batch.items()}
  batch["char_ids"] = batch["char_ids"][:, :, :max(4, max(len(c) for c in char_ids))]
  ours = localize._forward(m)(run.lm.variables, batch)
  with torch.no_grad():
    h, start, end = reference(*(torch.from_numpy(np.asarray(batch[k])) for k in
                                ("word_ids", "char_ids", "video", "video_mask", "query_mask")))
  for theirs, mine in ((h, ours["highlight_prob"]), (start, ours["start_logits"]), (end, ours["end_logits"])):
    np.testing.assert_allclose(theirs.numpy(), np.asarray(mine), rtol=1e-4, atol=1e-4)


def test_export_refuses_an_attention_width_upstream_cannot_hold(runs, tmp_path, capsys, torch):
  config_path = runs["sm"] / "config.json"
  original = config_path.read_text()
  workdir = tmp_path / "wide"
  import shutil

  shutil.copytree(runs["sm"], workdir)
  config = json.loads(original)
  config["model"]["attention_dim"] = 2 * DIM
  (workdir / "config.json").write_text(json.dumps(config))
  # re-save split 0 with a 2D-wide attention
  import jax

  from iptnet_jax import checkpoint
  from iptnet_jax.sm import train as sm_train

  shutil.rmtree(workdir / "checkpoints" / "split_0")
  model = sm_train.make_model(run_models.read_config(workdir))
  best = checkpoint.BestCheckpoint(workdir / "checkpoints" / "split_0")
  best.save(1, jax.device_get(sm_train.init_params(model, jax.random.key(0), DIM)), {"epoch": 1})
  best.close()
  err = _error_line(capsys, export.main, [f"--workdir={workdir}", f"--out={tmp_path / 'o'}"])
  assert f"config.model.attention_dim={2 * DIM}: DSNet-AF's attention is num_feature x num_feature" in err


# ------------------------------------------------------------------------------------------------ plots

def test_training_curves_and_a_failing_plot_never_raise(tmp_path, capsys):
  rows = [{"run_id": "r", "resume": 0, "split": s, "step": 2 * e + s, "phase": e, "epoch": e, "source": src,
           "steps": 2, "loss_total": 1.0 / (e + 1), "loss_teach_sm": 0.0 if src == "sm_data" else 0.1,
           **({"student_test_score": 0.5 + 0.01 * e} if src == "sm_data" else {})}
          for s in (0, 1) for e in range(1, 4) for src in ("lm_data", "sm_data")]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  path = plots.training_curves(tmp_path)
  assert path == tmp_path / "plots" / "training_curves.png" and path.stat().st_size > 0
  import matplotlib.image

  assert matplotlib.image.imread(path).shape[0] > 400  # one row of panels per split
  (tmp_path / "metrics.jsonl").write_text("{not json\n")
  assert plots.after_training(tmp_path) == []
  assert "warning: plots of" in capsys.readouterr().err
