"""Fixtures of the suite-wide tests: the reference (uninterrupted) runs."""

import numpy as np
import pytest
from PIL import Image

from tests.apps import cli
from tests.suite.runs import APPS, flags_of


@pytest.fixture(scope="session")
def suite_files(tmp_path_factory):
    """Files the runs read: one synthesized-audio cache for every trigger_word
    run, and a class folder of PNGs (3 classes, a colour each) for the
    classification run that reads its images as training goes."""
    folder = tmp_path_factory.mktemp("image_folder")
    rng = np.random.default_rng(0)
    for label, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
        (folder / f"class_{label}").mkdir()
        for i in range(30):
            pixels = np.clip(rng.normal(colour, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class_{label}" / f"{i:02d}.png")
    return {"trigger_word_cache": str(tmp_path_factory.mktemp("trigger_word_cache")),
            "image_folder": str(folder)}


@pytest.fixture(scope="session")
def reference(tmp_path_factory, suite_files):
    """The uninterrupted run of each app (made on first use): its workdir."""
    made = {}

    def get(name):
        if name not in made:
            workdir = str(tmp_path_factory.mktemp(f"reference-{name}"))
            cli.run_app(APPS[name].app, workdir, *flags_of(APPS[name], suite_files))
            made[name] = workdir
        return made[name]

    return get
