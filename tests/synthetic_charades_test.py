"""Synthetic Charades-STA features: layout, marker, determinism and the planted query -> moment relation."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from iptnet_jax.datasets import charades_sta as cs
from iptnet_jax.datasets import clip_features
from iptnet_jax.datasets import text
from iptnet_jax.datasets.builders import synthetic_charades as sc
from iptnet_jax.lm import span

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IPTNET_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

DURATIONS = {"VIDA": 30.0, "VIDB": 5.2, "VIDC": 24.6, "VIDT": 18.0}
TRAIN = [
    "VIDA 2.0 8.0##person opens the door.",
    "VIDA 2.0 8.0##a person opening a door.",  # a second sentence for the same moment
    "VIDA 15.0 25.0##person sits on a chair eating a sandwich.",
    "VIDB 0.0 3.0##a person laughs.",
    "VIDC 10.5 20.0##person takes a book from a shelf.",
]
TEST = ["VIDT 4.0 9.0##the person closes a laptop.", "VIDT 11.0 17.0##person drinks from a cup."]
SPEC = sc.SyntheticCharadesSpec(seed=3, dim=64)


@pytest.fixture
def annotation_dir(tmp_path):
  folder = tmp_path / "charades_sta"
  folder.mkdir()
  (folder / "charades.json").write_text(json.dumps({v: {"duration": d} for v, d in DURATIONS.items()}))
  (folder / "charades_sta_train.txt").write_text("\n".join(TRAIN) + "\n")
  (folder / "charades_sta_test.txt").write_text("\n".join(TEST) + "\n")
  return folder


def test_writes_one_feature_file_per_video_with_the_marker(annotation_dir, tmp_path):
  out = tmp_path / "features"
  marker = sc.generate(annotation_dir, out, SPEC)
  assert sorted(p.name for p in out.glob("*.npy")) == ["VIDA.npy", "VIDB.npy", "VIDC.npy", "VIDT.npy"]
  for vid, duration in DURATIONS.items():
    features = np.load(out / f"{vid}.npy")
    assert features.dtype == np.float32 and np.isfinite(features).all()
    assert features.shape == (max(8, round(duration)), 64)  # ~1 feature per second, at least 8
    assert 0.5 < np.sqrt(np.mean(features ** 2)) < 3  # O(1) entries, like real I3D features
  on_disk = json.loads((out / clip_features.SYNTHETIC_MARKER).read_text())
  assert on_disk == json.loads(json.dumps(marker))
  assert on_disk["synthetic"] and on_disk["complete"] and on_disk["seed"] == 3 and on_disk["num_videos"] == 4
  assert on_disk["parameters"]["dim"] == 64 and on_disk["recipe_version"] == sc.RECIPE_VERSION
  assert json.loads((out / "feature_shapes.json").read_text()) == {"VIDA": 30, "VIDB": 8, "VIDC": 25, "VIDT": 18}
  assert not list(out.glob("*.tmp"))


def test_same_seed_same_bytes_and_subsets_do_not_change_a_video(annotation_dir, tmp_path):
  sc.generate(annotation_dir, tmp_path / "a", SPEC)
  sc.generate(annotation_dir, tmp_path / "b", SPEC, splits=["train"], max_videos=1)
  sc.generate(annotation_dir, tmp_path / "c", dataclasses.replace(SPEC, seed=4))
  assert sorted(p.name for p in (tmp_path / "b").glob("*.npy")) == ["VIDA.npy"]
  a, b, c = (np.load(tmp_path / d / "VIDA.npy") for d in "abc")
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_query_concept_marks_its_own_moment(annotation_dir, tmp_path):
  out = tmp_path / "features"
  sc.generate(annotation_dir, out, SPEC)
  bank = sc.ConceptBank.for_annotations(annotation_dir, SPEC)
  video = np.load(out / "VIDA.npy")  # 30 frames of 1 s: moment 1 on frames 2..7, moment 2 on 15..24
  door = video @ bank.sentence(text.tokenize(TRAIN[0]))
  chair = video @ bank.sentence(text.tokenize(TRAIN[2]))
  # Each query's own moment responds more than the other moment of the same video and than any background.
  assert door[2:8].min() > door[15:25].max() and chair[15:25].min() > chair[2:8].max()
  background = np.r_[0:2, 8:15, 25:30]
  assert door[2:8].mean() - np.median(door[background]) > 0.5 * np.sqrt(SPEC.dim)
  # Soft boundaries: VIDC's moment [10.5, 20.0] over 25 frames of 0.984 s covers frame 10 ([9.84, 10.824])
  # for 0.324 / 0.984 and frame 20 ([19.68, 20.664]) for 0.32 / 0.984.
  coverage = sc.moment_coverage(10.5, 20.0, 24.6, 25)
  np.testing.assert_allclose(coverage[9:22], [0, 0.324 / 0.984] + [1] * 9 + [0.32 / 0.984, 0], atol=1e-9)


def test_distractors_come_from_other_videos_and_add_signal(annotation_dir):
  pool = cs.load_split_annotations(annotation_dir)["train"]
  bank = sc.ConceptBank.for_annotations(annotation_dir, SPEC)
  sentences = [a for a in pool if a.vid == "VIDA"]
  with_distractor = sc.synthesize_video("VIDA", 30.0, sentences, pool, SPEC, bank)
  without = sc.synthesize_video("VIDA", 30.0, sentences, pool, dataclasses.replace(SPEC, distractors_per_video=0), bank)
  changed = np.flatnonzero(np.abs(with_distractor - without).sum(axis=1) > 1e-6)
  assert 1 <= len(changed) <= 30 // 4 and np.all(np.diff(changed) == 1)  # one contiguous run
  added = (with_distractor - without)[changed[0]]
  other_sentences = [bank.sentence(a.words) for a in pool if a.vid != "VIDA"]
  assert max(float(added @ s) for s in other_sentences) == pytest.approx(SPEC.signal_scale * np.sqrt(SPEC.dim),
                                                                          rel=1e-4)


def test_loader_reads_the_features_as_synthetic(annotation_dir, tmp_path):
  out = tmp_path / "features"
  sc.generate(annotation_dir, out, SPEC)
  glove = tmp_path / "glove.txt"
  glove.write_text("person 1 2\na 3 4\n")
  dataset = cs.load_charades_sta(annotation_dir, glove, out)
  assert dataset.synthetic and dataset.feature_dim == 64
  assert dataset.describe_features().startswith("SYNTHETIC features (seed 3, recipe charades-word-concepts v1)")
  batch = next(dataset.batches("train", 2, shuffle=False))
  assert batch["video"].shape == (2, 32, 64)


def test_oracle_readout_localizes_far_above_random(annotation_dir, tmp_path):
  # A linear readout that knows the word directions finds the moments: the relation is learnable.
  out = tmp_path / "features"
  sc.generate(annotation_dir, out, SPEC)
  bank = sc.ConceptBank.for_annotations(annotation_dir, SPEC)
  ious = []
  for annotation in cs.load_split_annotations(annotation_dir)["train"]:
    video = np.load(out / f"{annotation.vid}.npy")
    score = video @ bank.sentence(annotation.words)
    on = np.flatnonzero(score > (score.max() + np.median(score)) / 2)
    start, end = span.index_to_time(on[:1], on[-1:], np.array([len(video)]), np.array([annotation.duration]))
    ious.append(span.temporal_iou(np.stack([start, end], 1), [[annotation.start, annotation.end]])[0])
  assert np.mean(ious) > 0.8


def test_refuses_unmarked_or_differently_made_folders(annotation_dir, tmp_path):
  real = tmp_path / "real"
  real.mkdir()
  np.save(real / "VIDA.npy", np.zeros((30, 64), np.float32))
  with pytest.raises(sc.SyntheticDataError, match="no SYNTHETIC.json marker"):
    sc.generate(annotation_dir, real, SPEC)
  out = tmp_path / "features"
  sc.generate(annotation_dir, out, SPEC)
  sc.generate(annotation_dir, out, SPEC, max_videos=1)  # same settings: fine
  with pytest.raises(sc.SyntheticDataError, match="other settings"):
    sc.generate(annotation_dir, out, dataclasses.replace(SPEC, noise_scale=2.0))
  with pytest.raises(sc.SyntheticDataError, match="dim"):
    sc.SyntheticCharadesSpec(dim=0)


def test_marker_is_written_before_any_feature_file(annotation_dir, tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    assert (tmp_path / "features" / clip_features.SYNTHETIC_MARKER).is_file()
    raise KeyboardInterrupt

  monkeypatch.setattr(sc, "synthesize_video", fail)
  with pytest.raises(KeyboardInterrupt):
    sc.generate(annotation_dir, tmp_path / "features", SPEC)
  assert json.loads((tmp_path / "features" / clip_features.SYNTHETIC_MARKER).read_text())["complete"] is False


def test_cli(annotation_dir, tmp_path, capsys):
  out = tmp_path / "cli"
  assert sc.main(["--annotations", str(annotation_dir), "--out", str(out), "--dim", "16", "--max-videos", "1"]) == 0
  assert "SYNTHETIC features for 2 videos" in capsys.readouterr().out
  assert np.load(out / "VIDT.npy").shape == (18, 16)
  assert sc.main(["--annotations", str(annotation_dir), "--out", str(out), "--dim", "32"]) == 2
  assert "other settings" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED_DATA / "charades_sta").is_dir(),
                    reason=f"real Charades-STA annotations not found under {SHARED_DATA} (set IPTNET_SHARED_DATA)")
def test_real_annotations_smoke(tmp_path):
  assert sc.main(["--shared", str(SHARED_DATA), "--out", str(tmp_path), "--dim", "32", "--max-videos", "3"]) == 0
  marker = json.loads((tmp_path / clip_features.SYNTHETIC_MARKER).read_text())
  assert marker["complete"] and marker["num_videos"] == 6  # 3 train + 3 test videos
  durations = cs.load_durations(SHARED_DATA / "charades_sta" / "charades.json")
  for path in tmp_path.glob("*.npy"):
    assert np.load(path).shape == (max(8, round(durations[path.stem])), 32)


def test_word_concepts_are_unit_vectors_in_a_shared_low_rank_subspace():
  bank = sc.ConceptBank(0, 64, rank=8)
  concepts = np.stack([bank.word(w) for w in ["person", "door", "opens", "a", "laptop", "cup", "sits", "book", "."]])
  np.testing.assert_allclose(np.linalg.norm(concepts, axis=1), 1, rtol=1e-5)
  assert np.linalg.matrix_rank(concepts, tol=1e-4) == 8
  np.testing.assert_array_equal(sc.ConceptBank(0, 64, rank=8).word("door"), bank.word("door"))  # seeded
  assert not np.allclose(sc.ConceptBank(1, 64, rank=8).word("door"), bank.word("door"))
  full = np.stack([sc.ConceptBank(0, 64).word(w) for w in ["person", "door", "opens", "a", "laptop", "cup", "sits",
                                                           "book", "."]])
  assert np.linalg.matrix_rank(full, tol=1e-4) == 9
