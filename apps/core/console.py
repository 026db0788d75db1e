"""A quiet console: TensorFlow's start-up and internal lines only when asked for.

A run's console shows what a Keras user expects (a progress bar per epoch, a
validation line, a summary). TensorFlow's C++ start-up lines (oneDNN, "could
not find cuda drivers", a cuInit error on every machine without a GPU) and its
Python INFO lines (savers, signature renames) are hidden unless the command
line asks for more with -v 1 / --verbosity=1 (absl's flags), which shows them all.
"""

import logging
import os
import sys
import tempfile


def verbose(argv):
    """Whether `argv` asks for TensorFlow's own lines: absl's verbosity above 0
    (-v 1, -v=1, --v=1, --verbosity 1, --verbosity=1)."""
    args = list(argv[1:])
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in ("-v", "--v", "--verbosity"):
            if not equals:
                value = args[i + 1] if i + 1 < len(args) else ""
            if value.lstrip("-").isdigit() and int(value) > 0:
                return True
    return False


def start(argv=None):
    """Imports TensorFlow quietly unless `argv` (default sys.argv) asks for its lines.

    Call before anything imports TensorFlow. Its C++ logging before absl is
    set up ignores TF_CPP_MIN_LOG_LEVEL, so stderr is caught while it loads
    and shown only if the import fails.
    """
    argv = sys.argv if argv is None else argv
    if verbose(argv) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if "tensorflow" not in sys.modules:  # the import failed: show why
                caught.seek(0)
                sys.stderr.write(caught.read().decode(errors="replace"))
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the project's packages (a virtual environment may lie in the same folder)
PACKAGES = tuple(os.path.join(_ROOT, name) + os.sep
                 for name in ("apps", "layers", "optimizers", "configs", "bench"))


class _OnlyOurInfo(logging.Filter):
    """Drops INFO lines logged from outside the project (TensorFlow's savers,
    signature renames, fingerprints), which go through absl's handler too."""

    def filter(self, record):
        return record.levelno >= logging.WARNING or record.pathname.startswith(PACKAGES)


class _Plain(logging.Formatter):
    """'message' for INFO, 'warning: message' above: a console, not a server log."""

    def format(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def configure_logging(argv=None):
    """absl's handler for a console: plain lines, and only the project's INFO
    unless `argv` asks for more (-v keeps absl's full format and everything)."""
    from absl import logging as absl_logging

    if verbose(sys.argv if argv is None else argv):
        return
    handler = absl_logging.get_absl_handler()
    handler.addFilter(_OnlyOurInfo())
    handler.setFormatter(_Plain())
