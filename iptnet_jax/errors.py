"""The one base class of every error a user can cause (bad input file, bad config value, unusable workdir).

`iptnet_jax.main` prints an `InputError` as one line and exits non-zero; any other exception is a programming
error and keeps its traceback. Each subclass's message names the file / field, what was expected and what was
found. A subclass may also derive from the builtin the failure is (FileNotFoundError, ImportError), so callers
that catch those keep working.
"""


class InputError(ValueError):
  """Something the user gave (a file, a config value, a workdir) is unusable; the message says what and why."""


class MissingDependencyError(InputError, ImportError):
  """A run asks for something that needs an optional dependency this environment lacks (e.g. torch for an
  upstream checkpoint); the message says which extra to install. Raised when the feature is used, not on import."""
