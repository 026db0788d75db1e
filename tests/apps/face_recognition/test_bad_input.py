"""What users get wrong with the face-recognition app: one row each (issue 11).

A row sets up one mistake (files on disk, config fields, the flags as the
command line gives them) and says what the user must read: one `error:` line
naming the file or field and what was expected (`Error`), or, where the app
goes on without a bad file (an unreadable image among good ones), a warning
naming each skipped file and their count (`Skips`). An error changes nothing
in the workdir. Most rows run the entrypoint's work in this process
(tests.apps.cli.user_error_of); the `cli` rows run `python -m apps.face_recognition`.
"""

import os

import numpy as np
import pytest
from PIL import Image

from apps.face_recognition import gallery as gallery_lib
from apps.face_recognition.task import FaceRecognitionTask
from configs.face_recognition import get_config
from tests.apps.bad_input import Case, Error, Skips, expect_outcome


class FaceCase(Case):
    """A row's run of the face-recognition app; adds faces, galleries and the
    session's trained run."""

    get_config = staticmethod(get_config)

    def kept(self):
        """{"images": how many images the training-data loader keeps, all splits}."""
        data = FaceRecognitionTask(self.config).load_data()
        return {"images": sum(len(s) for s in (data.train, data.val, data.test))}

    def faces(self, folder, people, per_person=3, size=(20, 18)):
        """`people` sub-folders of `per_person` random face images each, under `folder`."""
        rng = np.random.default_rng(len(people))
        for person in people:
            os.makedirs(self.tmp / folder / person, exist_ok=True)
            for i in range(per_person):
                self.image(f"{folder}/{person}/{person}_{i}.jpg", size, rng)
        return self

    def image(self, name, size=(20, 18), rng=None):
        rng = rng or np.random.default_rng(0)
        os.makedirs(os.path.dirname(self.tmp / name), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(self.tmp / name)
        return self

    def npz(self, name, **arrays):
        np.savez(self.tmp / name, **arrays)
        return self

    def source_folder(self, name):
        """Training data from the folder `name` (config.data.source = 'folder')."""
        self.config.data.source = "folder"
        self.config.data.path = self.path(name)
        return self

    def trained(self):
        """The workdir holds the session's trained run (its config.json and export/)."""
        return self.run_of("trained_faces", "export")

    def enrolled(self, *people, dim=16):
        """DIR/gallery.npz with one random `dim`-d embedding per person."""
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(len(people), dim))
        gallery = gallery_lib.Gallery().enroll(
            people, vectors / np.linalg.norm(vectors, axis=-1, keepdims=True),
            [f"{p}.png" for p in people])
        gallery.save(os.path.join(self.workdir, gallery_lib.FILENAME))
        return self


PEOPLE = [f"p{i}" for i in range(8)]

CASES = [
    # ----------------------------------------------------------- config fields
    pytest.param(lambda c: c.set(cli=["--config.data.imagesize=32"]),
                 Error("--config.data.imagesize", "unknown or invalid config field"),
                 id="cli-unknown-config-field"),
    pytest.param(lambda c: c.field("loss.mining", "hardest"),
                 Error("config.loss.mining = 'hardest': expected one of 'all', 'hard', 'semi_hard'"),
                 id="mining-misspelt"),
    pytest.param(lambda c: c.field("model.backbone", "vgg"),
                 Error("config.model.backbone = 'vgg': expected one of 'resnet', 'inception'"),
                 id="backbone-unknown"),
    pytest.param(lambda c: c.field("eval.initial_threshold", 3.0),
                 Error("config.eval.initial_threshold = 3.0: expected a number in (0, 2]"),
                 id="threshold-out-of-range"),
    pytest.param(lambda c: c.field("data.synthetic.variation", -1.0),
                 Error("config.data.synthetic.variation = -1.0: expected a number in [0, 2]"),
                 id="variation-negative"),
    pytest.param(lambda c: c.field("data.image_size", 4),
                 Error("config.data.image_size = 4: expected an integer in [8, 512]"),
                 id="image-size-too-small"),
    pytest.param(lambda c: c.field("data.channels", 4),
                 Error("config.data.channels = 4: expected one of 1, 3"), id="four-channels"),
    pytest.param(lambda c: c.field("data.split", (0.5, 0.2, 0.2)),
                 Error("config.data.split = (0.5, 0.2, 0.2): expected three fractions"),
                 id="split-not-summing-to-one"),
    pytest.param(lambda c: c.field("train.images_per_identity", 3),
                 Error("config.train.batch_size = 16 must be a multiple of "
                       "config.train.images_per_identity = 3"), id="batch-not-groups-of-k"),
    pytest.param(lambda c: c.field("train.batch_size", 80),
                 Error("the training split has 18 people, fewer than the 20 per batch"),
                 id="batch-needs-more-people-than-there-are"),
    pytest.param(lambda c: c.field("data.split", (0.94, 0.03, 0.03)),
                 Error("config.data.split = (0.94, 0.03, 0.03): the validation split has 1 "
                       "person with >= 2 images; expected at least 2"),
                 id="split-leaves-one-person"),
    pytest.param(lambda c: c.set(mode="enrol"),
                 Error("--mode=enrol: expected one of", "enroll"), id="mode-misspelt"),
    # ------------------------------------------------------------ training data
    pytest.param(lambda c: c.source_folder(""), Error("config.data.path is empty"),
                 id="folder-path-empty"),
    pytest.param(lambda c: c.source_folder("@nowhere"),
                 Error("config.data.path = '", "nowhere': no such folder"), id="folder-missing"),
    pytest.param(lambda c: c.folder("people").source_folder("@people"),
                 Error("people': expected one sub-folder of images per class (at least 2), "
                       "found 0"), id="folder-empty"),
    pytest.param(lambda c: c.folder("people/ada").folder("people/bob").folder("people/cy")
                 .source_folder("@people"),
                 Error("people': expected one sub-folder", "found 0"),
                 id="folder-of-empty-person-folders"),
    pytest.param(lambda c: c.file("people/ada/1.jpg").file("people/bob/1.jpg")
                 .file("people/cy/1.png").source_folder("@people"),
                 Error("people': expected one sub-folder", "found 0"),
                 id="folder-of-unreadable-images"),
    pytest.param(lambda c: c.faces("people", PEOPLE + ["q", "r"], per_person=1)
                 .source_folder("@people"),
                 Error("people': 0 of 10 people have at least 2 images "
                       "(config.data.min_images); expected at least 6"),
                 id="folder-of-one-image-per-person"),
    pytest.param(lambda c: c.faces("people", PEOPLE).file("people/p1/p1_9.jpg")
                 .folder("people/empty").source_folder("@people"),
                 Skips("p1_9.jpg: not a readable image", "1 unreadable image(s) skipped",
                       "empty: no readable images", images=24),
                 id="unreadable-image-and-empty-person-skipped-and-counted"),
    pytest.param(lambda c: c.faces("people", PEOPLE).faces("people", ["solo"], per_person=1)
                 .source_folder("@people"),
                 Skips("left out 1 of 9 people with fewer than 2 images", images=24),
                 id="person-with-one-image-left-out-and-counted"),
    pytest.param(lambda c: c.field("data.source", "tfds").field("data.data_dir",
                                                                 c.path("@tfds")),
                 Error("TFDS data set 'lfw' is not prepared in config.data.data_dir"),
                 id="tfds-not-prepared"),
    pytest.param(lambda c: c.field("data.source", "tfds").field("data.name", "lfww"),
                 Error("config.data.name = 'lfww': not a TFDS data set"), id="tfds-name-misspelt"),
    # ----------------------------------------------------------------- workdir
    pytest.param(lambda c: c.previous_run(app="style_transfer"),
                 Error("holds a run of the 'style_transfer' app, not 'face_recognition'"),
                 id="workdir-of-another-app"),
    pytest.param(lambda c: c.previous_run(model__embedding_dim=32),
                 Error("was trained with a different config.model"),
                 id="workdir-of-another-model"),
    pytest.param(lambda c: c.folder("run").file("run/config.json", "{"),
                 Error("config.json: unreadable config from an earlier run"),
                 id="workdir-config-json-corrupt"),
    # ------------------------------------------------- enroll, identify, verify
    pytest.param(lambda c: c.faces("gallery", ["ada"]).set(mode="enroll", gallery="@gallery"),
                 Error("no SavedModel in", "train or --mode=export first"),
                 id="enroll-before-training"),
    pytest.param(lambda c: c.image("q.png").set(mode="identify", input="@q.png"),
                 Error("no SavedModel in"), id="identify-before-training"),
    pytest.param(lambda c: c.trained().set(mode="enroll"),
                 Error("--gallery is required: a folder with one sub-folder or one image per "
                       "person"), id="enroll-without-gallery"),
    pytest.param(lambda c: c.trained().set(mode="enroll", gallery="@nowhere"),
                 Error("--gallery=", "nowhere: no such folder"), id="enroll-gallery-missing"),
    pytest.param(lambda c: c.trained().image("ada.png").set(mode="enroll", gallery="@ada.png"),
                 Error("ada.png: a file; expected a folder with one sub-folder or one image "
                       "per person"), id="enroll-gallery-is-a-file"),
    pytest.param(lambda c: c.trained().folder("gallery").file("gallery/notes.txt")
                 .set(mode="enroll", gallery="@gallery"),
                 Error("gallery: no face images (.png, .jpg"), id="enroll-gallery-empty"),
    pytest.param(lambda c: c.trained().folder("gallery/ada").folder("gallery/bob")
                 .set(mode="enroll", gallery="@gallery"),
                 Error("gallery: no face images", "(2 empty sub-folders)"),
                 id="enroll-gallery-of-empty-person-folders"),
    pytest.param(lambda c: c.trained().file("gallery/ada.jpg").file("gallery/bob/1.png")
                 .set(mode="enroll", gallery="@gallery"),
                 Error("gallery: none of its 2 image files is a readable face image (first: ",
                       "ada.jpg: not a readable image"), id="enroll-gallery-unreadable"),
    pytest.param(lambda c: c.trained().image("gallery/ada.png", (4, 6))
                 .set(mode="enroll", gallery="@gallery"),
                 Error("ada.png: the image is 6x4 pixels; expected a face image of at least "
                       "8x8"), id="enroll-images-too-small"),
    pytest.param(lambda c: c.trained().enrolled("ada", "bob", dim=8).faces("gallery", ["cy"])
                 .set(mode="enroll", gallery="@gallery"),
                 Error("gallery.npz holds 8-d embeddings but this workdir's model gives 16-d "
                       "ones (config.model.embedding_dim)"), id="enroll-into-a-foreign-gallery"),
    pytest.param(lambda c: c.trained().file("run/gallery.npz", "junk")
                 .image("q.png").set(mode="identify", input="@q.png"),
                 Error("gallery.npz: not a gallery written by --mode=enroll (not a NumPy .npz "
                       "archive)"), id="gallery-file-corrupt"),
    pytest.param(lambda c: c.trained().npz("run/gallery.npz", names=np.array(["ada"]))
                 .image("q.png").set(mode="identify", input="@q.png"),
                 Error("gallery.npz: not a gallery written by --mode=enroll (no embeddings, "
                       "files array)"), id="gallery-file-without-embeddings"),
    pytest.param(lambda c: c.trained().enrolled("ada").set(mode="identify"),
                 Error("--mode=identify needs --input=PATH (a face image or a folder of them)"),
                 id="identify-without-input"),
    pytest.param(lambda c: c.trained().enrolled("ada").set(mode="identify", input="@q.png"),
                 Error("--input=", "q.png: no such file or folder"), id="identify-input-missing"),
    pytest.param(lambda c: c.trained().enrolled("ada").folder("faces").file("faces/a.txt")
                 .set(mode="identify", input="@faces"),
                 Error("--input=", "faces: no image files (.png"), id="identify-empty-folder"),
    pytest.param(lambda c: c.trained().enrolled("ada").file("q.jpg")
                 .set(mode="identify", input="@q.jpg"),
                 Error("--input=", "q.jpg: not a readable image"), id="identify-unreadable-image"),
    pytest.param(lambda c: c.trained().enrolled("ada").file("faces/a.jpg").file("faces/b.png")
                 .set(mode="identify", input="@faces"),
                 Error("faces: none of its 2 image files is readable"),
                 id="identify-folder-of-unreadable-images"),
    pytest.param(lambda c: c.trained().enrolled("ada").image("q.png", (3, 30))
                 .set(mode="identify", input="@q.png"),
                 Error("q.png: the image is 30x3 pixels; expected a face image of at least 8x8"),
                 id="identify-image-too-small"),
    pytest.param(lambda c: c.trained().image("q.png").set(mode="identify", input="@q.png"),
                 Error("no gallery in", "enroll people first (--mode=enroll --gallery=DIR"),
                 id="identify-before-enroll"),
    pytest.param(lambda c: c.trained().enrolled("ada").image("q.png").folder("gallery")
                 .set(mode="identify", input="@q.png", gallery="@gallery"),
                 Error("gallery is for --mode=enroll, not --mode=identify"),
                 id="gallery-flag-with-identify"),
    pytest.param(lambda c: c.trained().enrolled("ada").image("q.png")
                 .set(mode="identify", input="@q.png", identity="ada"),
                 Error("--identity=ada is for --mode=verify"), id="identity-flag-with-identify"),
    pytest.param(lambda c: c.trained().enrolled("ada").image("q.png")
                 .set(mode="verify", input="@q.png"),
                 Error("--mode=verify needs --identity=NAME"), id="verify-without-identity"),
    pytest.param(lambda c: c.trained().enrolled("ada", "bob").image("q.png")
                 .set(mode="verify", input="@q.png", identity="dan"),
                 Error("--identity=dan: not in the gallery (enrolled: ada, bob)"),
                 id="verify-identity-not-enrolled"),
    pytest.param(lambda c: c.trained().enrolled("ada", "bob").image("q.png")
                 .set(cli=["--mode=verify", "--input=@q.png", "--identity=dan"]),
                 Error("--identity=dan: not in the gallery (enrolled: ada, bob)"),
                 id="cli-verify-identity-not-enrolled"),
    pytest.param(lambda c: c.trained().enrolled("ada").faces("faces", ["x"])
                 .set(mode="verify", input="@faces", identity="ada"),
                 Error("faces: expected one face image, got a folder"), id="verify-a-folder"),
    pytest.param(lambda c: c.trained().enrolled("ada").faces("faces", ["x"], per_person=2)
                 .file("faces/x/broken.jpg").set(mode="identify", input="@faces"),
                 Skips("broken.jpg: not a readable image",
                       out=("x_0.jpg: ", "x_1.jpg: ", "skipped 1 of 3 image files")),
                 id="identify-folder-skips-and-counts-an-unreadable-image"),
]


@pytest.mark.parametrize("setup, expect", CASES)
def test_bad_input(setup, expect, tmp_path, request, caplog, capsys):
    case = setup(FaceCase(tmp_path, request))
    expect_outcome(case, expect, FaceRecognitionTask, caplog, capsys)
