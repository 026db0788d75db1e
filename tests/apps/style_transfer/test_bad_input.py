"""What users get wrong with the style-transfer app: one row each (issue 11).

A row sets up one mistake (files on disk, config fields, the flags as the
command line gives them) and says what the user must read: one `error:` line
naming the file or field and what was expected (`Error`), or, where the app
goes on without a bad file (an unreadable photograph among good ones), a
warning naming each skipped file and their count (`Skips`). An error changes
nothing in the workdir. Most rows run the entrypoint's work in this process
(tests.apps.cli.user_error_of), with the row's --content/--style as the
task's options (Task.flags); the `cli` rows run `python -m apps.style_transfer`.
"""

import os

import numpy as np
import pytest
from PIL import Image

from apps.core.task import Run
from apps.style_transfer.task import StyleTransferTask
from configs.style_transfer import get_config
from tests.apps.bad_input import Case, Error, Skips, expect_outcome


class StyleCase(Case):
    """A row's run of the style-transfer app; adds images, photographs and the
    session's train_fast run."""

    get_config = staticmethod(get_config)

    def kept(self):
        """{"crops": how many training crops the train_fast loader keeps}."""
        config = StyleTransferTask.apply_options(
            self.config, Run(self.workdir, self.mode, options=self.flags))
        return {"crops": len(StyleTransferTask(config).load_data().train)}

    def image(self, name, size=(40, 50), seed=0):
        os.makedirs(os.path.dirname(self.tmp / name), exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(self.tmp / name)
        return self

    def photos(self, folder, count):
        for i in range(count):
            self.image(f"{folder}/photo_{i}.png", seed=i)
        return self

    def trained(self):
        """The workdir holds the session's train_fast run (config.json, ckpt/, export/)."""
        return self.run_of("fast_run", "ckpt", "export")


CASES = [
    # ----------------------------------------------------------- config fields
    pytest.param(lambda c: c.set(cli=["--config.optimize.stpes=10"]),
                 Error("--config.optimize.stpes", "unknown or invalid config field"),
                 id="cli-unknown-config-field"),
    pytest.param(lambda c: c.field("cost.style_layers", ()),
                 Error("config.cost.style_layers = (): expected (layer name, weight >= 0) "
                       "pairs"), id="no-style-layers"),
    pytest.param(lambda c: c.field("cost.tv_kind", "cubic"),
                 Error("config.cost.tv_kind = 'cubic': expected one of 'absolute', 'squared'"),
                 id="tv-kind-unknown"),
    pytest.param(lambda c: c.field("data.image_size", 8),
                 Error("config.data.image_size = 8: expected an integer in [32, 4096]"),
                 id="image-size-too-small"),
    pytest.param(lambda c: c.field("data.crop_size", 30),
                 Error("config.data.crop_size = 30: expected an integer >= 16 and a multiple "
                       "of 4"), id="crop-size-not-multiple-of-4"),
    pytest.param(lambda c: c.field("extractor.preprocess", "torch"),
                 Error("config.extractor.preprocess = 'torch': expected one of 'none', 'caffe'"),
                 id="preprocess-unknown"),
    pytest.param(lambda c: c.field("extractor.random_widths", (8, 8)),
                 Error("config.extractor.random_widths = (8, 8): expected five channel counts"),
                 id="random-widths-not-five"),
    pytest.param(lambda c: c.field("optimize.noise", 2.0),
                 Error("config.optimize.noise = 2.0: expected a number in [0, 1]"),
                 id="noise-out-of-range"),
    pytest.param(lambda c: c.field("optimize.optimizer.name", "sgdx"),
                 Error("config.optimize.optimizer.name = 'sgdx': expected one of"),
                 id="optimizer-unknown"),
    pytest.param(lambda c: c.field("cost.beta", -1.0),
                 Error("config.cost.beta = -1.0: expected a number >= 0"), id="beta-negative"),
    pytest.param(lambda c: c.field("extractor.weights", c.path("@vgg19.h5")),
                 Error("config.extractor.weights = '", "vgg19.h5': no such file (expected "
                       "'imagenet', 'random' or a VGG19 weights file)"),
                 id="weights-file-missing"),
    pytest.param(lambda c: c.file("vgg19.h5").field("extractor.weights", c.path("@vgg19.h5")),
                 Error("config.extractor.weights = '", "vgg19.h5'", "not VGG19"),
                 id="weights-file-not-vgg19"),
    pytest.param(lambda c: c.field("cost.content_layer", "block9_conv1"),
                 Error("config.cost: no layer 'block9_conv1' in the random-filter encoder"),
                 id="content-layer-unknown"),
    pytest.param(lambda c: c.set(mode="train_fst"),
                 Error("--mode=train_fst: expected one of", "train_fast"), id="mode-misspelt"),
    # ------------------------------------------------------ --content, --style
    pytest.param(lambda c: c.image("cat.png").set(cli=["--content=@cat.png",
                                                       "--style=nowhere.png"]),
                 Error("--style=nowhere.png: no such file (nor an embedded image: "),
                 id="cli-style-missing"),
    pytest.param(lambda c: c.set(content="@nowhere.jpg"),
                 Error("--content=", "nowhere.jpg: no such file (nor an embedded image: "
                       "astronaut, camera, chelsea"), id="content-missing"),
    pytest.param(lambda c: c.file("notes.txt").set(content="@notes.txt"),
                 Error("--content=", "notes.txt: not a readable image"),
                 id="content-not-an-image"),
    pytest.param(lambda c: c.file("style.png", "\x89PNG broken").set(style="@style.png"),
                 Error("--style=", "style.png: not a readable image"), id="style-corrupt-png"),
    pytest.param(lambda c: c.image("small.png", (8, 40)).set(content="@small.png"),
                 Error("--content=", "small.png: the image is 40x8 pixels; expected at least "
                       "16x16"), id="content-too-small"),
    pytest.param(lambda c: c.set(content=""),
                 Error("--content is empty: give an image file or one of astronaut"),
                 id="content-empty"),
    pytest.param(lambda c: c.set(style="flwer"),
                 Error("--style=flwer: no such file (nor an embedded image: ", "flower"),
                 id="style-name-misspelt"),
    pytest.param(lambda c: c.photos("photos", 3).set(content="@photos"),
                 Error("--content=", "photos: a folder; expected one image file"),
                 id="content-folder-for-train"),
    pytest.param(lambda c: c.image("cat.png").set(mode="train_fast", content="@cat.png"),
                 Error("--content=", "cat.png: --mode=train_fast takes a folder of content "
                       "photographs"), id="content-file-for-train-fast"),
    pytest.param(lambda c: c.photos("styles", 2).set(mode="train_fast", style="@styles"),
                 Error("--style=", "styles: a folder; expected one image file"),
                 id="style-folder-for-train-fast"),
    # --------------------------------------------- train_fast content photographs
    pytest.param(lambda c: c.set(mode="train_fast")
                 .field("data.content_dir", c.path("@nowhere")),
                 Error("config.data.content_dir = '", "nowhere': no such folder"),
                 id="content-dir-missing"),
    pytest.param(lambda c: c.photos("photos", 2).file("photos/notes.txt")
                 .set(mode="train_fast", content="@photos"),
                 Error("config.data.content_dir = '", "photos': 2 readable image files of at "
                       "least 16x16 pixels (of 2); expected at least 3"),
                 id="content-dir-too-few-images"),
    pytest.param(lambda c: c.file("photos/a.jpg").file("photos/b.png").file("photos/c.png")
                 .file("photos/d.png").set(mode="train_fast", content="@photos"),
                 Error("config.data.content_dir = '", "photos': 0 readable image files of at "
                       "least 16x16 pixels (of 4)", "expected at least 3"),
                 id="content-dir-unreadable"),
    pytest.param(lambda c: c.photos("photos", 8).file("photos/broken.jpg")
                 .image("photos/tiny.png", (10, 10)).set(mode="train_fast", content="@photos"),
                 Skips("broken.jpg: not a readable image", "tiny.png: the image is 10x10",
                       "skipped 2 of the 10 photographs in config.data.content_dir",
                       crops=6 * 2),  # 8 training files (the seed's split) less the 2 bad
                 id="content-dir-skips-and-counts-unreadable-photographs"),
    # ----------------------------------------------------------------- workdir
    pytest.param(lambda c: c.previous_run(app="face_recognition"),
                 Error("holds a run of the 'face_recognition' app, not 'style_transfer'"),
                 id="workdir-of-another-app"),
    pytest.param(lambda c: c.previous_run(model__width=0.25).set(mode="train_fast"),
                 Error("was trained with a different config.model"),
                 id="workdir-of-another-model"),
    pytest.param(lambda c: c.previous_run(data__style="china"),
                 Error("holds a run with config.data.style = 'china', not 'flower'"),
                 id="optimisation-workdir-of-another-style"),
    pytest.param(lambda c: c.trained().set(mode="train_fast", style="china"),
                 Error("holds a run with config.data.style = 'flower', not 'china'"),
                 id="stylizer-workdir-of-another-style"),
    pytest.param(lambda c: c.trained().set(mode="train"),
                 Error("holds a --mode=train_fast run; the optimisation method needs its own "
                       "--workdir"), id="stylizer-workdir-for-optimisation"),
    # ----------------------------------------------------------------- predict
    pytest.param(lambda c: c.image("cat.png").set(mode="predict", input="@cat.png"),
                 Error("no SavedModel in", "--mode=export first"),
                 id="predict-before-training"),
    pytest.param(lambda c: c.trained().set(mode="predict"),
                 Error("--mode=predict needs --input=PATH (an image file or a folder"),
                 id="predict-without-input"),
    pytest.param(lambda c: c.trained().set(mode="predict", input="@cat.png"),
                 Error("--input=", "cat.png: no such file or folder"), id="predict-input-missing"),
    pytest.param(lambda c: c.trained().folder("photos").file("photos/notes.txt")
                 .set(mode="predict", input="@photos"),
                 Error("--input=", "photos: no image files (.png"), id="predict-empty-folder"),
    pytest.param(lambda c: c.trained().file("cat.jpg").set(mode="predict", input="@cat.jpg"),
                 Error("--input=", "cat.jpg: not a readable image"),
                 id="predict-unreadable-image"),
    pytest.param(lambda c: c.trained().image("cat.png", (12, 200))
                 .set(mode="predict", input="@cat.png"),
                 Error("--input=", "cat.png: the image is 200x12 pixels; expected at least 16x16"),
                 id="predict-image-too-small"),
    pytest.param(lambda c: c.trained().file("photos/a.jpg").file("photos/b.png")
                 .set(mode="predict", input="@photos"),
                 Error("--input=", "photos: none of its 2 image files is readable "
                       "(first: --input=", "a.jpg: not a readable image"),
                 id="predict-folder-of-unreadable-images"),
    pytest.param(lambda c: c.trained().image("cat.png")
                 .set(mode="predict", input="@cat.png", content="@cat.png"),
                 Error("--content=", "cat.png is for --mode=train/train_fast, not "
                       "--mode=predict"),
                 id="predict-with-content-flag"),
    pytest.param(lambda c: c.trained().set(mode="export", style="china"),
                 Error("--style=china is for --mode=train/train_fast, not --mode=export"),
                 id="export-with-style-flag"),
    pytest.param(lambda c: c.trained().image("photos/a/x.png").image("photos/b/x.png")
                 .file("photos/b/broken.png").set(mode="predict", input="@photos"),
                 Skips("broken.png: not a readable image",
                       out=("skipped 1 of 3 image files (not readable",
                            os.path.join("predictions", "a_x_stylized.png"),
                            os.path.join("predictions", "b_x_stylized.png"))),
                 id="predict-folder-skips-and-counts-and-keeps-same-named-files-apart"),
]


@pytest.mark.parametrize("setup, expect", CASES)
def test_bad_input(setup, expect, tmp_path, request, caplog, capsys):
    expect_outcome(setup(StyleCase(tmp_path, request)), expect, StyleTransferTask, caplog, capsys)
