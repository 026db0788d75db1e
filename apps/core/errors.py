"""The one exception type for a user's mistake.

Anything raised as `UserError` reaches the user as a single line (no traceback)
and a non-zero exit status; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input: a config field, a file, a data set."""
