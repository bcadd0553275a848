"""export (iptnet_jax.export) of a generated iPTNet run (tests/workdir_fixtures.py) to upstream-shaped PyTorch files,
checked by loading them into the torch restatements; torch tests skip without torch."""

import json
from pathlib import Path

import numpy as np

from iptnet_jax import export, localize, run_models
from workdir_fixtures import DIM, error_line


def test_export_round_trips_through_the_upstream_shaped_torch_modules(finished_runs, tmp_path, torch):
  """Exported files load with strict keys into the PyTorch restatements of DSNet-AF and VSLNet (upstream's module
  names), and those modules compute our outputs."""
  from iptnet_jax.parity.reference import dsnet_torch, vslnet_torch
  from iptnet_jax.sm import model as sm_model

  out = tmp_path / "torch"
  assert export.main([f"--workdir={finished_runs['iptnet']}", "--to=torch", f"--out={out}"]) == 0
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
    run = run_models.load_run(finished_runs["iptnet"], entry["split"])
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
  run = run_models.load_run(finished_runs["iptnet"], 0)
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


def test_export_refuses_an_attention_width_upstream_cannot_hold(finished_runs, tmp_path, capsys, torch):
  config_path = finished_runs["sm"] / "config.json"
  original = config_path.read_text()
  workdir = tmp_path / "wide"
  import shutil

  shutil.copytree(finished_runs["sm"], workdir)
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
  err = error_line(capsys, export.main, [f"--workdir={workdir}", f"--out={tmp_path / 'o'}"])
  assert f"config.model.attention_dim={2 * DIM}: DSNet-AF's attention is num_feature x num_feature" in err
