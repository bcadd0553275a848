"""localize (iptnet_jax.localize) on a generated iPTNet run (tests/workdir_fixtures.py): ranked spans led by
VSLNet's prediction, and the runs and queries it refuses."""

import json

import numpy as np

from iptnet_jax import localize, run_models
from workdir_fixtures import WORDS, error_line, features_file


def test_localize_ranks_distinct_spans_led_by_vslnets_prediction(finished_runs, tmp_path):
  import jax

  from iptnet_jax.lm import span
  from iptnet_jax.lm import train as lm_train

  features = features_file(tmp_path / "v.npy", steps=40, seed=3)
  out = tmp_path / "loc"
  assert localize.main([f"--workdir={finished_runs['iptnet']}", f"--features={features}",
                        "--query=A person opens the zebra", "--duration=20", f"--out={out}"]) == 0
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
  run = run_models.load_run(finished_runs["iptnet"], 0, need_lm=True)
  word_vocab, char_vocab = localize.query_vocabulary(run)
  _, word_ids, char_ids, _ = localize.encode("a person opens the zebra", word_vocab, char_vocab, 32)
  batch = localize.lm_batch(np.load(features), word_ids, char_ids, run.lm_config)
  start, end = jax.device_get(lm_train.make_predict_fn(run.lm.model)(run.lm.variables, batch))
  s, e = span.predict_spans(start[:, :40], end[:, :40], np.ones((1, 40)))
  assert spans[0]["clips"] == [int(s[0]), int(e[0])]
  assert len(result["highlight"]["value"]) == 40
  assert (out / "highlight.png").read_bytes()[:4] == b"\x89PNG"


def test_localize_refuses_runs_without_an_lm_and_changed_vocabularies(finished_runs, tmp_path, capsys):
  features = features_file(tmp_path / "v.npy")
  argv = [f"--features={features}", "--query=a door", f"--out={tmp_path / 'o'}"]
  assert "has no moment localizer" in error_line(capsys, localize.main, [f"--workdir={finished_runs['sm']}", *argv])
  config_path = finished_runs["iptnet"] / "config.json"
  original = config_path.read_text()
  other = tmp_path / "glove.txt"
  other.write_text("".join(f"{w} " + " ".join(["0.5"] * 6) + "\n" for w in WORDS))
  config = json.loads(original)
  config["lm"]["data"]["glove_path"] = str(other)
  try:
    config_path.write_text(json.dumps(config))
    assert "is not the one the LM" in error_line(capsys, localize.main, [f"--workdir={finished_runs['iptnet']}", *argv])
    config = json.loads(original)  # vocab_scope='used' with max_videos=1: the first video's words only
    config["lm"]["data"].update(vocab_scope="used", max_videos=1)
    config_path.write_text(json.dumps(config))
    assert "is not the one the LM" in error_line(capsys, localize.main, [f"--workdir={finished_runs['iptnet']}", *argv])
  finally:
    config_path.write_text(original)
  for query, message in (("   ", "--query='   ': no words"), ("zebra giraffe", "none of its words (giraffe, zebra)")):
    assert message in error_line(capsys, localize.main, [
        f"--workdir={finished_runs['iptnet']}", f"--features={features}", f"--query={query}",
        f"--out={tmp_path / 'o'}"])
