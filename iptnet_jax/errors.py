"""The one base class of every error a user can cause (bad input file, bad config value, unusable workdir).

`iptnet_jax.main` prints an `InputError` as one line and exits non-zero; any other exception is a programming
error and keeps its traceback. Each subclass's message names the file / field, what was expected and what was
found.
"""


class InputError(ValueError):
  """Something the user gave (a file, a config value, a workdir) is unusable; the message says what and why."""
