"""One tiny face-recognition run for the whole session, shared by the tests that need
a trained workdir (end to end, and the bad-input rows that get past the missing export)."""

import pytest

from tests.apps.cli import run_app


@pytest.fixture(scope="session")
def trained_faces(tmp_path_factory):
    """A workdir trained by `python -m apps.face_recognition` on the tiny config."""
    workdir = str(tmp_path_factory.mktemp("faces"))
    result = run_app("face_recognition", workdir)
    assert "SavedModel:" in result.stdout
    return workdir
