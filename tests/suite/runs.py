"""The runs the suite-wide tests make: each app's tiny config and flags."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class App:
    """One app's training command: `python -m apps.<app> <tiny config> <flags>`."""

    app: str
    flags: tuple = ()
    exports: bool = True  # whether its training run writes DIR/export
    image_folder: bool = False  # whether it reads the session's class folder (suite_files)


APPS = {
    "classification": App("classification", ("--config.train.checkpoint_every=3",)),
    # Read from files as training goes (apps.core.columns), not from memory.
    "classification_folder": App("classification", (
        "--config.data.source=folder", "--config.data.channels=3", "--config.train.batch_size=8",
        "--config.train.checkpoint_every=3"), image_folder=True),
    "detection": App("detection", ("--config.train.epochs=4",
                                   "--config.train.checkpoint_every=1")),
    "segmentation": App("segmentation", ("--config.train.epochs=4",
                                         "--config.train.checkpoint_every=1")),
    "face_recognition": App("face_recognition", ("--config.train.epochs=3",
                                                 "--config.train.checkpoint_every=1")),
    "style_transfer_fast": App("style_transfer", ("--mode=train_fast", "--config.train.epochs=2",
                                                  "--config.train.checkpoint_every=1")),
    "style_transfer_optimize": App("style_transfer", ("--config.optimize.steps=400",
                                                      "--config.train.checkpoint_every=20"),
                                   exports=False),
    "embeddings": App("embeddings", ("--config.train.epochs=3",
                                     "--config.train.checkpoint_every=1")),
    "translation": App("translation", ("--config.train.checkpoint_every=1",)),
    # Without dropout: each replica draws its dropout masks for its own slice
    # of the batch, so with dropout two workers match one only in distribution
    # (the resume of dropout's generator state is tested by classification's
    # end-to-end test).
    "trigger_word": App("trigger_word", ("--config.train.epochs=3",
                                         "--config.train.checkpoint_every=1",
                                         "--config.model.dropout=0.0")),
}


def flags_of(case, suite_files):
    """The run's flags, with the session's files it reads (conftest.suite_files)."""
    if case.app == "trigger_word":
        return (*case.flags, f"--config.data.cache_dir={suite_files['trigger_word_cache']}")
    if case.image_folder:
        return (*case.flags, f"--config.data.path={suite_files['image_folder']}")
    return case.flags


def is_timing(key):
    """Metrics that measure speed, not results (they differ between runs)."""
    return key.endswith(("_per_sec", "_seconds"))
