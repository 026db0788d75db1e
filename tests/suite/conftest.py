"""Fixtures of the suite-wide tests: the reference (uninterrupted) runs."""

import pytest

from tests.apps import cli
from tests.suite.runs import APPS, flags_of


@pytest.fixture(scope="session")
def trigger_word_cache(tmp_path_factory):
    """One synthesized-audio cache for every trigger_word run of the session."""
    return str(tmp_path_factory.mktemp("trigger_word_cache"))


@pytest.fixture(scope="session")
def reference(tmp_path_factory, trigger_word_cache):
    """The uninterrupted run of each app (made on first use): its workdir."""
    made = {}

    def get(name):
        if name not in made:
            workdir = str(tmp_path_factory.mktemp(f"reference-{name}"))
            cli.run_app(APPS[name].app, workdir, *flags_of(APPS[name], trigger_word_cache))
            made[name] = workdir
        return made[name]

    return get
