"""Neural style transfer: the hooks of its two methods, for the core's modes.

    --mode=train       the optimisation method (optimize.py): G optimised for
                       config.optimize.steps; writes generated.png, side_by_side.png
                       and metrics.json (make_trainer gives the core an Optimization)
    --mode=train_fast  the feed-forward stylizer (model.py) trained by the shared
                       Trainer with the same costs on content crops (data.py);
                       tests, exports the SavedModel and writes metrics.json (modes.py)
    --mode=eval        the costs of the latest checkpoint (either kind of run)
    --mode=export      re-exports a train_fast run's SavedModel
    --mode=predict     stylizes --input (a file or folder) with a train_fast run's
                       SavedModel, into DIR/predictions/

--content and --style take an image file or an embedded name (images.py) and
stand for config.data.content / config.data.style; with --mode=train_fast,
--content names the folder of content photographs (config.data.content_dir).
"""

import copy
import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.errors import UserError
from apps.core.inference import compiled, predict_outputs
from apps.core.task import Task
from apps.style_transfer import costs as costs_lib
from apps.style_transfer import data as data_lib
from apps.style_transfer import extractor as extractor_lib
from apps.style_transfer import images as images_lib
from apps.style_transfer import model as model_lib
from apps.style_transfer import modes, optimize

EVAL_BATCH = 8
SHOWN = 4
#: the fields --content and --style stand for, which a trained run's config.json keeps
FLAG_FIELDS = ("content", "style", "content_dir")


class StyleTransferTask(Task):
    extra_modes = {"train_fast": modes.train_fast}
    export_made_by = "train_fast"
    flags = {
        "content": (("train", "train_fast"), "Content image (a file or an embedded name such "
                    "as chelsea); with --mode=train_fast a folder of content photographs. "
                    "Overrides config.data.content (content_dir)."),
        "style": (("train", "train_fast"), "Style image (a file or an embedded name such as "
                  "flower). Overrides config.data.style."),
    }
    headline_metrics = ("style_cost", "content_cost", "total_cost")

    def check_run(self, run):
        """A mode of the other method than the workdir's run is refused."""
        optimize.check_method(run.workdir, run.mode)

    @classmethod
    def apply_options(cls, config, run):
        """A copy of `config` with the images of this run.

        Training takes --content and --style into config.data (--content is the
        folder of photographs, config.data.content_dir, for --mode=train_fast).
        The modes that use a trained run (eval, export, predict) refuse those
        flags and take the fields from the run's config.json instead, so that
        they score what the run was made with, not the config's defaults.
        """
        config = copy.deepcopy(config)
        data = config.data
        if run.mode not in cls.flags["content"][0]:
            recorded = optimize.recorded_config(run.workdir).get("data")
            for field in FLAG_FIELDS:
                if isinstance(recorded, dict) and isinstance(recorded.get(field), str):
                    data[field] = recorded[field]
            return config
        content, style = run.option("content"), run.option("style")
        if style is not None:
            data.style = images_lib.named(style, "--style")
        if content is not None and run.mode == "train_fast":
            if not os.path.isdir(content):
                raise UserError(f"--content={content}: --mode=train_fast takes a folder of "
                                "content photographs")
            data.content_dir = content
        elif content is not None:
            data.content = images_lib.named(content, "--content")
        return config

    def make_trainer(self, workdir):
        """The shared Trainer for a train_fast run; else the optimisation method's
        run (a fresh workdir, too: --mode=train makes one)."""
        if optimize.workdir_kind(workdir) == "fast":
            return super().make_trainer(workdir)
        return optimize.Optimization(self.config, workdir)

    # ---------------------------------------------------- the fast stylizer

    def load_data(self):
        data = data_lib.load(self.config)
        logging.info("content crops: %d train, %d val, %d test (%dx%d)", len(data.train),
                     len(data.val), len(data.test), self.config.data.crop_size,
                     self.config.data.crop_size)
        return data

    def build_model(self):
        c = self.config
        self.extractor = extractor_lib.build(c, costs_lib.Costs.layer_names(c.cost))
        self.costs = costs_lib.Costs(self.extractor, c.cost)
        style = images_lib.read_image(c.data.style, "--style")
        size = c.data.crop_size
        self.style_u8 = images_lib.resize(images_lib.center_crop_to_aspect(style, 1, 1),
                                          size, size)
        self.style_target = {k: tf.constant(v) for k, v in self.costs.style_features(
            images_lib.to_float(self.style_u8)).items()}
        return model_lib.build(c.model.width, c.model.residual_blocks)

    def eval_example(self, image, target):
        return tf.cast(image, tf.float32) / 255.0, target

    def train_example(self, image, target, seed):
        image = tf.image.stateless_random_flip_left_right(tf.cast(image, tf.float32) / 255.0,
                                                          seed)
        return image, image

    def per_example_loss(self, content, stylized):
        """Each image's share of J: the costs are sums over the batch."""
        terms = self.costs(stylized, tf.stop_gradient(self.costs.content_features(content)),
                           self.style_target)
        batch = tf.shape(stylized)[0]
        return tf.fill([batch], terms["total"] / tf.cast(batch, terms["total"].dtype))

    def evaluate(self, model, split):
        """Mean costs per image of the stylized split, and the style cost of the
        unstylized content (`input_style_cost`) for comparison."""
        costs, style_target = self.costs, self.style_target

        def make_terms():
            @tf.function(autograph=False)
            def terms(content, stylized):
                content_target = costs.content_features(content)
                out = costs(stylized, content_target, style_target)
                out["input_style"] = costs(content, content_target, style_target)["style"]
                return out

            return terms

        terms = compiled(model, "style_transfer_eval_terms", make_terms)
        stylized = predict_outputs(model, split, EVAL_BATCH, self.eval_example)
        content = images_lib.to_float(split.inputs)
        sums = {}
        for i in range(0, len(content), EVAL_BATCH):
            out = terms(content[i:i + EVAL_BATCH], stylized[i:i + EVAL_BATCH])
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        n = len(content)
        metrics = {"content_cost": sums["content"] / n, "style_cost": sums["style"] / n,
                   "total_variation": sums["tv"] / n, "total_cost": sums["total"] / n,
                   "input_style_cost": sums["input_style"] / n}
        rows = [images_lib.side_by_side(split.inputs[i], images_lib.to_uint8(stylized[i]),
                                        self.style_u8)
                for i in range(min(SHOWN, n))]
        return metrics, {"content_stylized_style": np.concatenate(rows, axis=0)[None]}

    def export_endpoints(self, model):
        def serve(images):
            """uint8 images (batch, height, width, 1..4) of any size -> stylized uint8 RGB."""
            x = tf.cast(images, tf.float32) / 255.0
            x = tf.cond(tf.shape(x)[-1] >= 3, lambda: x[..., :3],
                        lambda: tf.tile(x[..., :1], [1, 1, 1, 3]))
            height, width = tf.shape(x)[1], tf.shape(x)[2]
            # The network halves the size twice: pad to multiples of 4, crop back.
            pad = [[0, 0], [0, (-height) % 4], [0, (-width) % 4], [0, 0]]
            y = model(tf.pad(x, pad, mode="SYMMETRIC"), training=False)[:, :height, :width]
            y = tf.ensure_shape(y, [None, None, None, 3])
            return {"images": tf.cast(tf.round(tf.clip_by_value(y, 0.0, 1.0) * 255.0),
                                      tf.uint8)}

        signature = [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")]
        return {"serving_default": (serve, signature)}

    # --------------------------------------------------------------- predict

    def read_item(self, file):
        """The image at `file` as uint8 RGB, at least 16x16 (the stylizer's SavedModel
        takes any size)."""
        return images_lib.read_image(file, "--input")

    def predict_item(self, saved_model, file, image, output):
        """Writes OUTPUT_stylized.png; its record for predictions.json."""
        serve = saved_model.signatures["serving_default"]
        stylized = serve(images=tf.constant(image[None]))["images"][0].numpy()
        path = images_lib.save_png(stylized, output + "_stylized.png")
        print(f"{file} -> {path}")
        return {"file": file, "stylized": path}
