"""Charades-STA annotations, tokenizer, vocabularies, feature loading and the batch contract."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from iptnet_jax.datasets import charades_sta as cs
from iptnet_jax.datasets import clip_features, input_pipeline
from iptnet_jax.datasets import moment_labels as labels
from iptnet_jax.datasets import text
from iptnet_jax.lm import span

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IPTNET_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

DURATIONS = {"VIDA": 30.0, "VIDB": 12.5, "VIDC": 200.0, "VIDT": 20.0}
TRAIN_LINES = [
    "VIDA 0.0 6.9##A person is putting a book on a shelf.",
    "VIDA 20.8 35.0##person begins to play on a phone.",
    "VIDB -1.0 5.0##The person's book, then a phone.",
    "",  # blank lines are skipped, as VSLNet skips them
    "VIDC 2.0 10.0##person opens the door.",
]
TEST_LINES = [
    "VIDT 1.0 4.0##a person slowly opens a book.",
    "VIDT 5.0 9.0##person zzzz the door.",
    "VIDT 10.0 12.0##a man ran.",
]
GLOVE_WORDS = ["person", "a", "book", "phone", "the", "door", "opens", "shelf", "on", "is", "'s", "slowly", "unused"]
FEATURE_LENGTHS = {"VIDA": 30, "VIDB": 13, "VIDC": 200, "VIDT": 20}
FEATURE_DIM = 6


def _glove_vector(index):
  return np.asarray([index, index + 0.5, -index], np.float32)


def _write_data(root: Path, *, train=TRAIN_LINES, test=TEST_LINES, durations=DURATIONS, marker=None):
  annotations, features = root / "charades_sta", root / "features"
  annotations.mkdir(parents=True, exist_ok=True)
  features.mkdir(exist_ok=True)
  (annotations / "charades.json").write_text(json.dumps({v: {"subset": "x", "duration": d}
                                                         for v, d in durations.items()}))
  (annotations / "charades_sta_train.txt").write_text("\n".join(train) + "\n")
  (annotations / "charades_sta_test.txt").write_text("\n".join(test) + "\n")
  glove = root / "glove.txt"
  glove.write_text("".join(f"{w} {' '.join(str(x) for x in _glove_vector(i))}\n" for i, w in enumerate(GLOVE_WORDS)))
  rng = np.random.default_rng(0)
  for vid, length in FEATURE_LENGTHS.items():
    np.save(features / f"{vid}.npy", rng.normal(size=(length, FEATURE_DIM)).astype(np.float32))
  if marker is not None:
    (features / clip_features.SYNTHETIC_MARKER).write_text(json.dumps(marker))
  return annotations, glove, features


@pytest.fixture
def data(tmp_path):
  return _write_data(tmp_path)


def _load(data, **kwargs):
  annotations, glove, features = data
  return cs.load_charades_sta(annotations, glove, features, **kwargs)


# ------------------------------------------------------------------------------------------------ tokenizer

@pytest.mark.parametrize(
    "sentence, tokens",
    [
        ("A person is putting a book on a shelf.",
         ["a", "person", "is", "putting", "a", "book", "on", "a", "shelf", "."]),
        ("person takes a book off of a shelf,turns.",
         ["person", "takes", "a", "book", "off", "of", "a", "shelf", ",", "turns", "."]),
        ("The person's shoes (socks) & hat!.",
         ["the", "person", "'s", "shoes", "(", "socks", ")", "&", "hat", "!", "."]),
        ("person #1 won't sit, they're gonna stand.",
         ["person", "#", "1", "wo", "n't", "sit", ",", "they", "'re", "gon", "na", "stand", "."]),
        ("a walk-in closet with a blanket/pillow near the door.the",
         ["a", "walk-in", "closet", "with", "a", "blanket/pillow", "near", "the", "door.the"]),
        ('1,000 people at 10:30 a.m. said "hi"', ["1,000", "people", "at", "10:30", "a.m.", "said", "``", "hi", "''"]),
        ("  Cannot   stop... ", ["can", "not", "stop", "..."]),
        # Punkt's sentence split, approximated: a word-final period ends a sentence, so it splits off mid-text
        ("he opens the door. then he sits.", ["he", "opens", "the", "door", ".", "then", "he", "sits", "."]),
        ("'Tis more'n d'ye", ["'", "tis", "more", "'n", "d", "'ye"]),  # NLTKWordTokenizer's own contraction rules
    ],
)
def test_tokenize_is_nltk_word_tokenize(sentence, tokens):
  assert text.tokenize(sentence) == tokens


# ---------------------------------------------------------------------------------------------- annotations

def test_annotations_are_clipped_and_numbered_across_splits(data):
  annotations = cs.load_split_annotations(data[0])
  train, test = annotations["train"], annotations["test"]
  assert [a.sample_id for a in train] == [0, 1, 2, 3] and [a.sample_id for a in test] == [4, 5, 6]
  assert (train[1].start, train[1].end) == (20.8, 30.0)  # end clipped to the 30 s duration
  assert (train[2].start, train[2].end) == (0.0, 5.0)  # start clipped to 0
  assert train[2].words == ("the", "person", "'s", "book", ",", "then", "a", "phone", ".")
  assert train[3].where.endswith("charades_sta_train.txt:5")


@pytest.mark.parametrize(
    "line, message",
    [
        ("VIDA 0.0 6.9 person walks", r"charades_sta_train.txt:2: expected 'VID start end##sentence'"),
        ("VIDA 0.0##person walks", r"charades_sta_train.txt:2: expected 'VID start end##sentence'"),
        ("VIDX 0.0 6.9##person walks", r"charades_sta_train.txt:2: video VIDX is not in charades.json"),
        ("VIDA 1.0 2.0##   ", r"charades_sta_train.txt:2: video VIDA: empty sentence"),
        ("VIDA one 2.0##person walks", r"charades_sta_train.txt:2: video VIDA: expected numeric start and end"),
        ("VIDA 31.0 35.0##person walks", r"charades_sta_train.txt:2: video VIDA: expected start < end .*empty after"),
        ("VIDA 5.0 nan##person walks", r"charades_sta_train.txt:2: video VIDA: expected finite"),
    ],
)
def test_malformed_annotation_lines_name_file_and_line(tmp_path, line, message):
  annotations, _, _ = _write_data(tmp_path, train=[TRAIN_LINES[0], line])
  with pytest.raises(cs.CharadesDataError, match=message):
    cs.load_split_annotations(annotations)


def test_bad_durations_and_missing_files(tmp_path):
  annotations, glove, features = _write_data(tmp_path, durations={**DURATIONS, "VIDB": -3})
  with pytest.raises(cs.CharadesDataError, match="charades.json: video VIDB: field 'duration'"):
    cs.load_split_annotations(annotations)
  with pytest.raises(cs.CharadesFileNotFoundError, match="charades_sta_train.txt: Charades-STA annotation file"):
    cs.parse_annotations(tmp_path / "charades_sta_train.txt", DURATIONS)
  with pytest.raises(text.TextFileNotFoundError, match="GloVe file not found"):
    text.load_glove(tmp_path / "missing.txt")
  with pytest.raises(clip_features.FeatureFileNotFoundError, match="feature folder not found"):
    clip_features.VideoFeatureStore(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------- vocabularies

def test_word_vocab_orders_glove_words_by_train_and_test_frequency(data):
  dataset = _load(data)
  # Counts over train+test: a 7, person 6, book 3, the 3, on 2, phone 2, opens 2, door 2, then is, shelf, 's,
  # slowly once; ties keep first occurrence. "." (6), "putting", "zzzz", ... are not in GloVe -> UNK.
  assert list(dataset.word_vocab) == ["<PAD>", "<UNK>", "a", "person", "book", "the", "on", "phone", "opens",
                                      "door", "is", "shelf", "'s", "slowly"]
  assert list(dataset.word_vocab.values()) == list(range(14))
  assert dataset.word_vectors.shape == (14, 3) and dataset.word_vectors.dtype == np.float32
  np.testing.assert_array_equal(dataset.word_vectors[:2], 0)
  for word, index in dataset.word_vocab.items():
    if index >= 2:
      np.testing.assert_array_equal(dataset.word_vectors[index], _glove_vector(GLOVE_WORDS.index(word)))
  assert "unused" not in dataset.word_vocab  # in GloVe but in no sentence
  assert (dataset.num_words, dataset.word_dim) == (14, 3)


def test_word_vocab_from_train_only(data):
  dataset = _load(data, vocab_splits=("train",))
  assert list(dataset.word_vocab)[2:] == ["a", "person", "book", "on", "phone", "the", "is", "shelf", "'s", "opens",
                                          "door"]
  slowly_query = dataset.test[0]
  assert slowly_query.words[2] == "slowly" and slowly_query.word_ids[2] == text.UNK_ID


def test_char_vocab_keeps_chars_seen_at_least_five_times(data):
  dataset = _load(data)
  _, char_counts = text.count_tokens([s.words for s in dataset.train + dataset.test])
  assert char_counts["z"] == 4 and "z" not in dataset.char_vocab
  assert list(dataset.char_vocab)[:2] == ["<PAD>", "<UNK>"]
  kept = list(dataset.char_vocab)[2:]
  assert set(kept) == {c for c, n in char_counts.items() if n >= 5}
  assert [char_counts[c] for c in kept] == sorted((char_counts[c] for c in kept), reverse=True)
  assert dataset.num_chars == len(kept) + 2


def test_glove_reader_skips_headers_and_rejects_short_lines(tmp_path):
  path = tmp_path / "g.txt"
  path.write_text("2 3\nbook 1 2 3\nnew york 4 5 6\n")
  vectors, dim = text.load_glove(path)
  assert dim == 3 and set(vectors) == {"book", "new york"}
  np.testing.assert_array_equal(vectors["new york"], [4, 5, 6])
  path.write_text("book 1 2 3\nshelf 1 2\n")
  with pytest.raises(text.TextDataError, match=r"g.txt:2: expected a word and 3 numbers, got 2"):
    text.load_glove(path)
  path.write_text("book 1 2 3\nshelf 1 x 2\n")
  with pytest.raises(text.TextDataError, match=r"g.txt:2: word 'shelf': expected 3 numbers"):
    text.load_glove(path)
  path.write_bytes(b"book 1 2 3\n\xff\xfe 1 2 3\n")
  with pytest.raises(text.TextDataError, match=r"g.txt:2: expected UTF-8 text"):
    text.load_glove(path)


# ----------------------------------------------------------------------------------------- samples, features

def test_samples_carry_vslnet_labels_and_capped_lengths(data):
  dataset = _load(data)
  first, second, _, long_video = dataset.train
  # 30 clips over 30 s: [0, 7] s has IoU 6.9/7 with [0, 6.9]; [21, 30] s has 9/9.2 with the clipped [20.8, 30].
  assert (first.num_units, first.start_index, first.end_index) == (30, 0, 6)
  assert (second.start_index, second.end_index) == (21, 29)
  assert long_video.num_units == 128  # 200 stored rows pooled to max_pos_len
  assert (long_video.start_index, long_video.end_index) == labels.time_to_index(2.0, 10.0, 128, 200.0)
  assert long_video.video().shape == (128, FEATURE_DIM)
  raw = np.load(data[2] / "VIDC.npy")
  np.testing.assert_allclose(long_video.video(), labels.visual_feature_sampling(raw, 128), rtol=1e-6)
  assert first.word_ids.dtype == np.int32 and first.word_ids.tolist() == [2, 3, 10, 1, 2, 4, 6, 2, 11, 1]
  assert [c.tolist() for c in first.char_ids[:1]] == [[dataset.char_vocab["a"]]]
  assert dataset.feature_dim == FEATURE_DIM and not dataset.synthetic
  assert "features from" in dataset.describe_features()


def test_max_pos_len_truncates_queries_and_videos(data):
  dataset = _load(data, max_pos_len=4)
  first = dataset.train[0]
  assert len(first.words) == 10 and first.word_ids.tolist() == [2, 3, 10, 1] and len(first.char_ids) == 4
  assert first.num_units == 4 and first.video().shape == (4, FEATURE_DIM)


def test_max_videos_keeps_the_first_videos_of_each_split(data):
  dataset = _load(data, max_videos=1)
  assert [s.vid for s in dataset.train] == ["VIDA", "VIDA"] and {s.vid for s in dataset.test} == {"VIDT"}
  assert dataset.num_words == 14  # vocabularies still come from every annotation


def test_vocab_scope_used_counts_only_the_kept_videos(data):
  every_line = _load(data, max_videos=1)
  used = _load(data, max_videos=1, vocab_scope="used")
  kept = used.train + used.test
  assert [s.sample_id for s in kept] == [s.sample_id for s in every_line.train + every_line.test]
  word_counts, char_counts = text.count_tokens([s.words for s in kept])
  # "'s" occurs only in VIDB's line, which max_videos=1 drops.
  assert "'s" in every_line.word_vocab and "'s" not in used.word_vocab
  assert list(used.word_vocab)[2:] == [w for w, _ in word_counts.most_common() if w in GLOVE_WORDS]
  assert list(used.char_vocab)[2:] == [c for c, n in char_counts.most_common() if n >= 5]
  assert used.num_chars < every_line.num_chars
  # Ids follow the vocabulary they were encoded with; the GloVe rows follow the ids.
  for sample in used.train:
    assert sample.word_ids.tolist() == [used.word_vocab.get(w, text.UNK_ID) for w in sample.words]
  np.testing.assert_array_equal(used.word_vectors[used.word_vocab["book"]], _glove_vector(GLOVE_WORDS.index("book")))
  assert _load(data, vocab_scope="used").word_vocab == _load(data).word_vocab  # without max_videos: the same
  with pytest.raises(cs.CharadesDataError, match=r"vocab_scope: expected one of \('files', 'used'\), got 'all'"):
    _load(data, vocab_scope="all")


def test_synthetic_marker_is_exposed(tmp_path):
  data = _write_data(tmp_path, marker={"synthetic": True, "seed": 7, "recipe_name": "r", "recipe_version": 1})
  dataset = _load(data)
  assert dataset.synthetic and dataset.synthetic_info["seed"] == 7
  assert "SYNTHETIC features (seed 7" in dataset.describe_features()


def test_missing_feature_file_names_video_and_annotation(data):
  (data[2] / "VIDB.npy").unlink()
  with pytest.raises(clip_features.FeatureFileNotFoundError, match=r"VIDB.npy: feature file of video VIDB not found.*"
                                                          r"needed by .*charades_sta_train.txt:3"):
    _load(data)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(13, np.float32), r"video VIDB: expected features of shape \(T, D\), got shape \(13,\)"),
        (np.zeros((13, 5), np.float32), r"video VIDB: expected features of shape \(T, 6\) like the other videos"),
        (np.zeros((13, 6), np.int64), r"video VIDB: expected float features"),
    ],
)
def test_bad_feature_files_are_rejected_at_load(data, array, message):
  np.save(data[2] / "VIDB.npy", array)
  with pytest.raises(clip_features.FeatureDataError, match=message):
    _load(data)


def test_nan_features_are_rejected_when_read(data):
  bad = np.ones((13, FEATURE_DIM), np.float32)
  bad[4, 2] = np.nan
  np.save(data[2] / "VIDB.npy", bad)
  dataset = _load(data)  # only headers are read up front
  with pytest.raises(clip_features.FeatureDataError, match=r"VIDB.npy: video VIDB: expected finite features.*first at row 4"):
    list(dataset.batches("train", 4, shuffle=False))


# ------------------------------------------------------------------------------------------------- batching

CONTRACT = {
    "video": np.float32, "video_mask": np.float32, "word_ids": np.int32, "char_ids": np.int32,
    "query_mask": np.float32, "start_index": np.int32, "end_index": np.int32, "highlight": np.float32,
    "example_mask": np.float32, "duration": np.float32, "num_units": np.int32, "gt_start": np.float32,
    "gt_end": np.float32, "sample_id": np.int32,
}


def test_batch_contract_shapes_padding_and_labels(data):
  dataset = _load(data)
  first, second = list(dataset.batches("train", 3, shuffle=False))
  for batch in (first, second):
    assert {k: v.dtype for k, v in batch.items()} == CONTRACT
  # Batch 1: VIDA, VIDA, VIDB (30, 30, 13 clips -> bucket 32); longest query 10 tokens -> 16; "putting" -> 8.
  assert first["video"].shape == (3, 32, FEATURE_DIM)
  assert first["word_ids"].shape == (3, 16) and first["char_ids"].shape == (3, 16, 8)
  for row, sample in enumerate(dataset.train[:3]):
    n, q = sample.num_units, len(sample.word_ids)
    np.testing.assert_array_equal(first["video"][row, :n], sample.video())
    assert not first["video"][row, n:].any()
    np.testing.assert_array_equal(first["video_mask"][row], np.arange(32) < n)
    np.testing.assert_array_equal(first["word_ids"][row, :q], sample.word_ids)
    assert not first["word_ids"][row, q:].any()
    np.testing.assert_array_equal(first["query_mask"][row], first["word_ids"][row] != 0)
    for position, chars in enumerate(sample.char_ids):
      np.testing.assert_array_equal(first["char_ids"][row, position, :len(chars)], chars)
      assert not first["char_ids"][row, position, len(chars):].any()
    expected_highlight = np.zeros(32, np.float32)
    expected_highlight[:n] = labels.highlight_labels(sample.start_index, sample.end_index, n)
    np.testing.assert_array_equal(first["highlight"][row], expected_highlight)
    assert (first["start_index"][row], first["end_index"][row]) == (sample.start_index, sample.end_index)
    assert (first["gt_start"][row], first["gt_end"][row]) == (np.float32(sample.start), np.float32(sample.end))
    assert first["duration"][row] == np.float32(sample.duration) and first["num_units"][row] == n
  np.testing.assert_array_equal(first["example_mask"], 1)
  np.testing.assert_array_equal(first["sample_id"], [0, 1, 2])
  # Batch 2: one real sample (VIDC, 128 clips) filled up to 3 rows with copies flagged example_mask 0.
  assert second["video"].shape == (3, 128, FEATURE_DIM)
  np.testing.assert_array_equal(second["example_mask"], [1, 0, 0])
  np.testing.assert_array_equal(second["sample_id"], [3, -1, -1])
  np.testing.assert_array_equal(second["video"][1], second["video"][0])
  assert second["video_mask"][1:].sum(axis=1).tolist() == [128, 128]  # filler rows are never all-masked


def test_char_axis_is_at_least_four_and_video_bucket_follows_length(data):
  dataset = _load(data)
  (batch,) = list(input_pipeline.iterate_lm_batches(dataset.test[2:], 2, shuffle=False))  # "a man ran ." on VIDT (20 clips)
  assert batch["char_ids"].shape == (2, 8, 4) and batch["video"].shape == (2, 32, FEATURE_DIM)
  (batch,) = list(input_pipeline.iterate_lm_batches(dataset.test[2:], 1, shuffle=False, video_buckets=(16, 24)))
  assert batch["video"].shape == (1, 24, FEATURE_DIM)


def test_shuffled_epochs_cover_every_sample_once_and_are_reproducible(data):
  dataset = _load(data)
  samples = dataset.train + dataset.test

  def epoch(seed, **kwargs):
    return [b["sample_id"][b["example_mask"] > 0].tolist()
            for b in input_pipeline.iterate_lm_batches(samples, 2, shuffle=True, rng=np.random.default_rng(seed), **kwargs)]

  order = sum(epoch(0), [])
  assert sorted(order) == list(range(7)) and order != list(range(7))
  assert epoch(0) == epoch(0)
  dropped = epoch(0, drop_remainder=True)
  assert len(dropped) == 3 and all(len(ids) == 2 for ids in dropped)


def test_batching_errors(data):
  dataset = _load(data)
  with pytest.raises(input_pipeline.BatchError, match="shuffle=True needs an rng"):
    next(input_pipeline.iterate_lm_batches(dataset.train, 2, shuffle=True))
  with pytest.raises(input_pipeline.BatchError, match="batch_size"):
    next(input_pipeline.iterate_lm_batches(dataset.train, 0, shuffle=False))
  with pytest.raises(cs.CharadesDataError, match="split"):
    dataset.split("val")


# ---------------------------------------------------------------------------------------------- real data

@pytest.mark.skipif(not (SHARED_DATA / "charades_sta").is_dir(),
                    reason=f"real Charades-STA annotations not found under {SHARED_DATA} (set IPTNET_SHARED_DATA)")
def test_real_annotations_and_vocabularies():
  annotations = cs.load_split_annotations(SHARED_DATA / "charades_sta")
  train, test = annotations["train"], annotations["test"]
  assert (len(train), len(test)) == (12408, 3720)  # reference_spec.md §3.1
  assert {a.vid for a in train}.isdisjoint({a.vid for a in test})
  assert all(0 <= a.start < a.end <= a.duration for a in train + test)
  word_counts, char_counts = text.count_tokens([a.words for a in train + test])
  glove, word_dim = text.load_glove(SHARED_DATA / "glove" / "glove.6B.50d.charades_tvsum_vocab.txt", set(word_counts))
  word_vocab, word_vectors = text.build_word_vocab(word_counts, glove, word_dim)
  assert word_dim == 50 and word_vectors.shape == (1231, 50)
  # "." is the most frequent token (16,128) but this GloVe subset has no punctuation, so it maps to UNK.
  assert word_counts.most_common(1) == [(".", 16128)] and "." not in word_vocab
  assert list(word_vocab)[2:6] == ["person", "a", "the", "on"]
  assert len(text.build_char_vocab(char_counts)) == 36
  assert max(len(a.words) for a in train + test) == 13  # every query fits the 16-token bucket


def test_lookup_and_moment_ious_score_batch_rows_against_float64_ground_truth(data):
  dataset = _load(data)
  batch = next(dataset.batches("test", 4, shuffle=False))
  real = batch["example_mask"] > 0
  samples = dataset.lookup(batch["sample_id"][real])
  assert [s.sample_id for s in samples] == [4, 5, 6]
  # Predicting the labels back gives the best IoU the clip grid allows: VIDT (20 clips over 20 s) is exact.
  ious = span.moment_ious(samples, batch["start_index"][real], batch["end_index"][real])
  np.testing.assert_allclose(ious, 1.0)
  assert span.moment_ious(samples[:1], [0], [19])[0] == pytest.approx(3 / 20)  # [0, 20] s vs [1, 4] s
  with pytest.raises(cs.CharadesDataError, match="no sample has id 99"):
    dataset.lookup([99])
