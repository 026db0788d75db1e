"""One tiny fast-stylizer run for the whole session, shared by the tests that need a
trained workdir (end to end, and the bad-input rows that get past the missing export)."""

import pytest

from tests.apps.cli import run_app


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory):
    """A workdir trained by `python -m apps.style_transfer --mode=train_fast` (tiny config)."""
    workdir = str(tmp_path_factory.mktemp("fast"))
    run_app("style_transfer", workdir, "--mode=train_fast")
    return workdir
