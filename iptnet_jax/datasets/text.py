"""Query text: tokenizer, GloVe vectors, word and character vocabularies, query encoding (VSLNet's text side).

Used by every moment-localization reader (Charades-STA, YouTube Highlights titles); nothing here knows a dataset.

* `tokenize(sentence)`: lower-cased `nltk.word_tokenize`, as VSLNet tokenises. Its word rules are NLTK's own
  (`NLTKWordTokenizer`, which needs no downloaded data); Punkt's sentence split (which needs the `punkt` data)
  is approximated: a sentence ends after a whitespace-separated word whose only period is its last character
  ("door. the" -> "door", ".", "the"; "a.m." and "door.the" stay whole). Punkt also knows abbreviations
  ("mr. smith" stays "mr.", here "mr", "."). Neither difference reaches Charades-STA: its only periods before the
  end of a sentence have no space after them (BUILD.md, 'Moment localization vs upstream VSLNet'), and all its 16,128
  sentences give the same tokens as the regex approximation of `nltk.word_tokenize` this replaced.
* `load_glove(path, keep)`: {word: float32 vector} from a GloVe text file.
* Word vocabulary (`build_word_vocab`): 0 = PAD, 1 = UNK, then every counted token present in GloVe, most frequent
  first (ties keep first occurrence); `word_vectors` rows 0 and 1 are zero. `check_glove_coverage` refuses a GloVe
  file that covers under MIN_KNOWN_TOKEN_FRACTION of the counted tokens.
* Char vocabulary (`build_char_vocab`): 0 = PAD, 1 = UNK, then the characters counted >= min_count times, most
  frequent first.
* `encode_query(words, ...)`: word ids and per-word char ids of the first max_pos_len words.

Malformed text raises `TextDataError` (an `errors.InputError`) naming the file and line.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from iptnet_jax.errors import InputError

PAD_TOKEN, UNK_TOKEN = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1
# The right GloVe file covers most query tokens (the shared 6B file: 86 % of Charades-STA's, nearly all the rest
# being the sentence-final '.' it lacks); a wrong one (another language, casing or vocabulary) almost none. A
# quarter is far from both, and leaves room for small hand-made vocabularies in tests.
MIN_KNOWN_TOKEN_FRACTION = 0.25


class TextDataError(InputError):
  """A text input (annotation or GloVe file) that does not have the expected form."""


class TextFileNotFoundError(TextDataError, FileNotFoundError):
  """A required text file (e.g. GloVe) that does not exist."""


# ---------------------------------------------------------------------------------------------- tokenizer

@functools.cache
def _word_tokenizer():
  from nltk.tokenize.destructive import NLTKWordTokenizer  # nltk's package import takes ~1 s: paid on first use

  return NLTKWordTokenizer()


def split_sentences(text: str) -> list[str]:
  """Punkt's sentence split, approximated: a sentence ends after a word whose only period is its last character."""
  sentences, words = [], []
  for word in text.split():
    words.append(word)
    if len(word) > 1 and word.endswith(".") and "." not in word[:-1]:
      sentences.append(" ".join(words))
      words = []
  if words:
    sentences.append(" ".join(words))
  return sentences


def tokenize(sentence: str) -> list[str]:
  """Lower-cases and splits a sentence into word and punctuation tokens, as `nltk.word_tokenize` (see the module
  docstring for the one approximation: the sentence split)."""
  tokenizer = _word_tokenizer()
  return [token for part in split_sentences(sentence.strip().lower()) for token in tokenizer.tokenize(part)]


# ------------------------------------------------------------------------------------------------ text files

def read_lines(path: Path) -> Iterator[tuple[int, str]]:
  """(line number, text) of a UTF-8 text file; a decoding failure names the file and line."""
  with path.open("rb") as lines:
    for line_number, raw in enumerate(lines, start=1):
      try:
        yield line_number, raw.decode("utf-8")
      except UnicodeDecodeError as error:
        raise TextDataError(f"{path}:{line_number}: expected UTF-8 text: {error}") from None


# ---------------------------------------------------------------------------------------------- vocabularies

def load_glove(path: str | Path, keep: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
  """({word: float32 vector}, word_dim) from a GloVe text file, keeping only the words in `keep` if given.

  The dimension is that of the first vector line. A word2vec-style "count dim" header line is skipped, as
  VSLNet skips it. A line with more fields than `word_dim + 1` has a word containing spaces (GloVe 840B has a
  few); it is read with the leading fields joined as its word (such a word never matches a token).
  """
  path = Path(path)
  if not path.is_file():
    raise TextFileNotFoundError(f"{path}: GloVe file not found (expected a GloVe text file, e.g. "
                                    "glove/glove.6B.50d.charades_tvsum_vocab.txt of the shared data)")
  vectors: dict[str, np.ndarray] = {}
  word_dim = dim_line = None
  for line_number, line in read_lines(path):
    fields = line.rstrip("\n").rstrip().split(" ")
    if fields == [""]:
      continue
    if word_dim is None and len(fields) == 2 and line_number == 1:
      continue  # "vocab_size dim" header
    if word_dim is None:
      word_dim, dim_line = len(fields) - 1, line_number
      if word_dim < 1:
        raise TextDataError(f"{path}:{line_number}: expected 'word v_1 ... v_d', got {line.strip()!r}")
    # More fields than word_dim + 1 is a word with spaces, unless the second field is a number: then the row is
    # wider than the first one, and reading it as a word with spaces would make every word of the file unknown.
    if len(fields) < word_dim + 1 or (len(fields) > word_dim + 1 and _is_number(fields[1])):
      raise TextDataError(f"{path}:{line_number}: expected a word and {word_dim} numbers, got "
                              f"{len(fields) - 1} numbers (line {dim_line} has {word_dim}: every row of a GloVe "
                              "file has the same width)")
    word = " ".join(fields[:len(fields) - word_dim])
    if keep is not None and word not in keep:
      continue
    try:
      vector = np.asarray(fields[len(fields) - word_dim:], dtype=np.float32)
    except ValueError:
      raise TextDataError(f"{path}:{line_number}: word {word!r}: expected {word_dim} numbers") from None
    if not np.all(np.isfinite(vector)):
      raise TextDataError(f"{path}:{line_number}: word {word!r}: expected finite numbers")
    vectors[word] = vector  # a repeated word keeps its last vector, as VSLNet's filter_glove_embedding
  if word_dim is None:
    raise TextDataError(f"{path}: no vectors (expected GloVe text lines 'word v_1 ... v_d')")
  return vectors, word_dim


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def check_glove_coverage(word_counts: collections.Counter, glove: Mapping[str, np.ndarray], glove_path: str | Path,
                         annotation_dir: str | Path) -> None:
  """Refuses a vocabulary whose query tokens are mostly UNK: the wrong GloVe file (another language, casing or
  vocabulary) would otherwise train on queries the model cannot read, and with no word known at all the GloVe
  table is empty (a zero-size array that checkpointing rejects only after training)."""
  total = sum(word_counts.values())
  known = sum(count for word, count in word_counts.items() if word in glove)
  if total and known < MIN_KNOWN_TOKEN_FRACTION * total:
    known_words = sum(1 for word in word_counts if word in glove)
    raise TextDataError(
        f"{glove_path}: only {known_words} of the {len(word_counts)} distinct query words of {annotation_dir} have a "
        f"vector ({100 * known / total:.1f} % of the {total} query tokens); expected at least "
        f"{100 * MIN_KNOWN_TOKEN_FRACTION:.0f} %, else most query words are UNK (is it a GloVe text file of "
        "lower-cased English words?)")


def count_tokens(token_lists: Sequence[Sequence[str]]) -> tuple[collections.Counter, collections.Counter]:
  """(word counter, char counter) in first-occurrence order, which `most_common` keeps for ties."""
  words, chars = collections.Counter(), collections.Counter()
  for tokens in token_lists:
    for token in tokens:
      words[token] += 1
      for char in token:
        chars[char] += 1
  return words, chars


def build_word_vocab(word_counts: collections.Counter, glove: Mapping[str, np.ndarray],
                     word_dim: int) -> tuple[dict[str, int], np.ndarray]:
  """(word_vocab, word_vectors): PAD, UNK, then in-GloVe words by decreasing count; rows 0 and 1 zero."""
  words = [word for word, _ in word_counts.most_common() if word in glove]
  vocab = {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID}
  vectors = np.zeros((len(words) + 2, word_dim), np.float32)
  for word in words:
    vectors[len(vocab)] = glove[word]
    vocab[word] = len(vocab)
  return vocab, vectors


def build_char_vocab(char_counts: collections.Counter, min_count: int = 5) -> dict[str, int]:
  """PAD, UNK, then characters with count >= min_count by decreasing count."""
  vocab = {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID}
  for char, count in char_counts.most_common():
    if count >= min_count:
      vocab[char] = len(vocab)
  return vocab


def encode_query(words: Sequence[str], word_vocab: Mapping[str, int], char_vocab: Mapping[str, int],
                 max_pos_len: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
  """(word_ids (Lq,) int32, one int32 char-id array per word) for the first max_pos_len words."""
  kept = list(words)[:max_pos_len]
  word_ids = np.asarray([word_vocab.get(w, UNK_ID) for w in kept], np.int32)
  char_ids = tuple(np.asarray([char_vocab.get(c, UNK_ID) for c in w], np.int32) for w in kept)
  return word_ids, char_ids

