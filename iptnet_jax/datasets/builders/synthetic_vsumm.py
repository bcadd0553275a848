"""Synthetic summarization videos in the eccv16 h5 layout, with a learnable importance signal.

The recipe (all seeded):
* a bank of K "concept" vectors, each with a fixed importance in [0, 1], shared by every video;
* a video is a run of shots (2-10 steps of 15 frames); each shot shows one concept, and its steps carry
  that concept's vector plus Gaussian noise, so importance is predictable from the features;
* each of U users scores every frame 1..5 from the shot's importance plus the user's own per-shot noise
  (users disagree, as in TVSum); the user summary is that user's 15 % knapsack keyshot summary over the
  shots, and gtscore is the users' mean score at the picks.

This is the embedded default data of the demo config (generated on first use, never committed) and the
fixture of the tests. F-scores on it are not comparable with any published number.

CLI: python -m iptnet_jax.datasets.synthetic_vsumm --out DIR [--num-videos 40 --feature-dim 1024 --seed 0]
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import yaml
from absl import app, flags

from iptnet_jax import fileio
from iptnet_jax.datasets import eccv16
from iptnet_jax.errors import InputError
from iptnet_jax.vsumm import keyshots

FRAMES_PER_STEP = 15
H5_NAME = "synthetic_vsumm.h5"
SPLIT_NAME = "synthetic_vsumm_splits.yml"
MARKER_NAME = "SYNTHETIC_VSUMM.json"


class SyntheticSpecError(InputError):
  """A SyntheticSpec field (config.data.synthetic.*) outside its range."""


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  num_videos: int = 40
  feature_dim: int = 1024
  min_steps: int = 60
  max_steps: int = 200
  num_users: int = 20
  num_concepts: int = 12
  feature_noise: float = 0.7
  user_noise: float = 0.15
  num_splits: int = 5
  test_fraction: float = 0.2
  seed: int = 0

  def __post_init__(self):
    checks = {
        "num_videos": (self.num_videos >= 5, "at least 5"), "feature_dim": (self.feature_dim >= 1, "at least 1"),
        "min_steps": (4 <= self.min_steps <= self.max_steps, f"in [4, max_steps={self.max_steps}]"),
        "num_users": (self.num_users >= 1, "at least 1"), "num_concepts": (self.num_concepts >= 2, "at least 2"),
        "num_splits": (self.num_splits >= 1, "at least 1"), "test_fraction": (0 < self.test_fraction < 1, "in (0, 1)"),
    }
    for field, (ok, expected) in checks.items():
      if not ok:
        raise SyntheticSpecError(f"synthetic data (config.data.synthetic): {field}={getattr(self, field)!r}: "
                                 f"expected {expected}")


def _shots(rng: np.random.Generator, n_frames: int) -> np.ndarray:
  """(S, 2) inclusive shots of 2-10 steps covering [0, n_frames - 1] exactly once."""
  bounds = [0]
  while bounds[-1] < n_frames:
    bounds.append(bounds[-1] + FRAMES_PER_STEP * int(rng.integers(2, 11)))
  bounds[-1] = n_frames
  if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2 * FRAMES_PER_STEP:
    del bounds[-2]  # fold a stub of a shot into its predecessor
  bounds = np.asarray(bounds)
  return np.stack([bounds[:-1], bounds[1:] - 1], axis=1)


def synthetic_video(rng: np.random.Generator, spec: SyntheticSpec, concepts: np.ndarray,
                    concept_importance: np.ndarray) -> dict[str, np.ndarray]:
  num_steps = int(rng.integers(spec.min_steps, spec.max_steps + 1))
  n_frames = num_steps * FRAMES_PER_STEP
  picks = np.arange(num_steps) * FRAMES_PER_STEP
  cps = _shots(rng, n_frames)
  nfps = cps[:, 1] - cps[:, 0] + 1
  shot_concept = rng.integers(spec.num_concepts, size=len(cps))
  shot_of_frame = np.repeat(np.arange(len(cps)), nfps)

  step_concept = shot_concept[shot_of_frame[picks]]
  features = concepts[step_concept] + spec.feature_noise * rng.normal(size=(num_steps, spec.feature_dim))

  # Users score shots: shared importance + personal noise, mapped onto TVSum's 1..5 scale.
  user_shot = concept_importance[shot_concept][None, :] + spec.user_noise * rng.normal(size=(spec.num_users, len(cps)))
  user_shot_scores = np.clip(np.rint(1 + 4 * user_shot), 1, 5)
  user_frame_scores = user_shot_scores[:, shot_of_frame]  # (U, N)
  all_frames = np.arange(n_frames)
  user_summary = np.stack([
      keyshots.get_keyshot_summ(scores, cps, n_frames, nfps, all_frames) for scores in user_frame_scores
  ]).astype(np.uint8)
  return {
      "features": features.astype(np.float32),
      "gtscore": user_frame_scores[:, picks].mean(axis=0).astype(np.float32),
      "user_summary": user_summary,
      "change_points": cps.astype(np.int32),
      "n_frame_per_seg": nfps.astype(np.int32),
      "n_frames": np.int32(n_frames),
      "picks": picks.astype(np.int32),
  }


def _random_splits(rng: np.random.Generator, keys: list[str], spec: SyntheticSpec) -> list[dict]:
  num_test = max(1, int(round(spec.test_fraction * len(keys))))
  splits = []
  for _ in range(spec.num_splits):
    order = rng.permutation(len(keys))
    test = sorted((keys[i] for i in order[:num_test]), key=lambda k: int(k.split("_")[-1]))
    train = sorted((keys[i] for i in order[num_test:]), key=lambda k: int(k.split("_")[-1]))
    # DSNet's yml style: keys name the file, resolved against the dataset folder.
    splits.append({"train_keys": [f"{H5_NAME}/{k}" for k in train],
                   "test_keys": [f"{H5_NAME}/{k}" for k in test]})
  return splits


def write_synthetic_dataset(out_dir: str | Path, spec: SyntheticSpec) -> tuple[Path, Path]:
  """Writes the h5, a DSNet-style yml split file and a marker; returns (h5 path, split path)."""
  out_dir = Path(out_dir)
  rng = np.random.default_rng(spec.seed)
  concepts = rng.normal(size=(spec.num_concepts, spec.feature_dim))
  concept_importance = rng.uniform(0, 1, size=spec.num_concepts)
  videos = {f"video_{i + 1}": synthetic_video(rng, spec, concepts, concept_importance)
            for i in range(spec.num_videos)}
  h5_path = eccv16.write_eccv16_h5(out_dir / H5_NAME, videos, overwrite=True)
  split_path = out_dir / SPLIT_NAME
  fileio.atomic_write_text(split_path, yaml.safe_dump(_random_splits(rng, list(videos), spec)))
  fileio.atomic_write_text(out_dir / MARKER_NAME, json.dumps(dataclasses.asdict(spec), indent=1))
  return h5_path, split_path


def ensure_synthetic_dataset(out_dir: str | Path, spec: SyntheticSpec) -> tuple[Path, Path]:
  """Reuses a dataset generated with the same spec in `out_dir`, else (re)generates it."""
  out_dir = Path(out_dir)
  marker = out_dir / MARKER_NAME
  h5_path, split_path = out_dir / H5_NAME, out_dir / SPLIT_NAME
  if marker.is_file() and h5_path.is_file() and split_path.is_file():
    if json.loads(marker.read_text()) == dataclasses.asdict(spec):
      return h5_path, split_path
  return write_synthetic_dataset(out_dir, spec)


_OUT = flags.DEFINE_string("out", None, "Folder to write the synthetic h5 and split file into.")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", SyntheticSpec.num_videos, "Number of videos.")
_FEATURE_DIM = flags.DEFINE_integer("feature_dim", SyntheticSpec.feature_dim, "Feature width.")
_SEED = flags.DEFINE_integer("seed", SyntheticSpec.seed, "Random seed.")


def main(argv):
  del argv
  spec = SyntheticSpec(num_videos=_NUM_VIDEOS.value, feature_dim=_FEATURE_DIM.value, seed=_SEED.value)
  h5_path, split_path = write_synthetic_dataset(_OUT.value, spec)
  print(f"wrote {h5_path} ({spec.num_videos} synthetic videos) and {split_path}")


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
