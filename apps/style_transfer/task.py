"""Neural style transfer: the modes, and the fast stylizer's task for the shared trainer.

    --mode=train       the optimisation method (apps/style_transfer/optimize.py):
                       G optimised for config.optimize.steps; writes generated.png,
                       side_by_side.png and metrics.json
    --mode=train_fast  the feed-forward stylizer (model.py) trained by the shared
                       Trainer with the same costs on content crops (data.py);
                       tests, exports the SavedModel and writes metrics.json
    --mode=eval        the costs of the latest checkpoint (either kind of run)
    --mode=export      re-exports a train_fast run's SavedModel
    --mode=predict     stylizes --input (a file or folder) with a train_fast run's
                       SavedModel, into DIR/predictions/

--content and --style take an image file or an embedded name (images.py) and
override config.data.content / config.data.style; with --mode=train_fast,
--content names the folder of content photographs (config.data.content_dir).
"""

import os

import numpy as np
import tensorflow as tf
from absl import flags, logging

from apps.core import trainer as trainer_lib
from apps.core import workdir as workdir_lib
from apps.core.config import (
    Rule,
    boolean,
    fractions_summing_to_one,
    non_negative_float,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
)
from apps.core.errors import UserError
from apps.core.main import flag_value
from apps.core.task import Task
from apps.style_transfer import costs as costs_lib
from apps.style_transfer import data as data_lib
from apps.style_transfer import extractor as extractor_lib
from apps.style_transfer import images as images_lib
from apps.style_transfer import model as model_lib
from apps.style_transfer import optimize

_CONTENT = flags.DEFINE_string(
    "content", None, "Content image (a file or an embedded name such as chelsea); with "
    "--mode=train_fast a folder of content photographs. Overrides config.data.content.")
_STYLE = flags.DEFINE_string(
    "style", None, "Style image (a file or an embedded name such as flower). Overrides "
    "config.data.style.")

EVAL_BATCH = 8
SHOWN = 4


def _size(low, high):
    return Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
                f"an integer in [{low}, {high}]")


def _style_layers(value):
    return len(value) > 0 and all(
        len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], (int, float))
        and item[1] >= 0 for item in value)


def _widths(value):
    return len(value) == 5 and all(isinstance(v, int) and v > 0 for v in value)


class StyleTransferTask(Task):
    rules = {
        "data.content": Rule(lambda v: isinstance(v, str) and v, "an image file or an "
                             "embedded name (" + ", ".join(sorted(images_lib.EMBEDDED)) + ")"),
        "data.style": Rule(lambda v: isinstance(v, str) and v, "an image file or an "
                           "embedded name (" + ", ".join(sorted(images_lib.EMBEDDED)) + ")"),
        "data.image_size": _size(32, 4096),
        "data.keep_aspect": boolean,
        "data.content_dir": Rule(lambda v: isinstance(v, str), "a folder path or ''"),
        "data.crop_size": Rule(lambda v: isinstance(v, int) and v >= 16 and v % 4 == 0,
                               "an integer >= 16 and a multiple of 4"),
        "data.crops_per_image": positive_int,
        "data.eval_crops_per_image": positive_int,
        "data.split": fractions_summing_to_one,
        "data.max_images": non_negative_int,
        "extractor.weights": Rule(lambda v: isinstance(v, str) and v,
                                  "'imagenet', 'random' or a VGG19 weights file"),
        "extractor.download": boolean,
        "extractor.fallback": boolean,
        "extractor.preprocess": one_of("none", "caffe"),
        "extractor.random_widths": Rule(_widths, "five channel counts > 0, one per block"),
        "extractor.seed": non_negative_int,
        "cost.alpha": non_negative_float,
        "cost.beta": non_negative_float,
        "cost.content_layer": Rule(lambda v: isinstance(v, str) and v, "a layer name, "
                                   "e.g. 'block4_conv2'"),
        "cost.style_layers": Rule(_style_layers, "(layer name, weight >= 0) pairs, e.g. "
                                  "(('block1_conv1', 0.2), ...)"),
        "cost.tv_weight": non_negative_float,
        "cost.tv_kind": one_of("absolute", "squared"),
        "optimize.steps": positive_int,
        "optimize.noise": Rule(lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
                               "a number in [0, 1]"),
        "optimize.image_every": positive_int,
        "optimize.optimizer.name": one_of("momentum", "rmsprop", "adam", "adamw", "adagrad"),
        "optimize.optimizer.learning_rate": positive_float,
        "optimize.optimizer.schedule": one_of("constant", "step", "inverse_time",
                                              "exponential", "warmup_cosine", "linear",
                                              "inverse_sqrt"),
        "optimize.optimizer.clipnorm": non_negative_float,
        "model.width": Rule(lambda v: isinstance(v, (int, float)) and 0 < v <= 4,
                            "a number in (0, 4]"),
        "model.residual_blocks": non_negative_int,
    }
    extra_modes = ("train", "train_fast", "eval", "export", "predict")

    # ------------------------------------------------------------------ modes

    def run_mode(self, mode, workdir, input_path):
        self._apply_flags(mode)
        kind = optimize.workdir_kind(workdir)
        if kind == "fast" and mode in ("train_fast", "eval"):
            # A stylizer learns one style: training on, or scoring, with another
            # would silently mix two.
            optimize.check_same_fields(self.config, workdir, ("data.style",))
        if mode == "train_fast":  # a bad --style stops the run before the data is cut
            images_lib.read_image(self.config.data.style, "--style")
        if mode == "train":
            if self.config.strategy != "default" or self.config.mixed_precision:
                logging.warning("the optimisation method runs on one device in float32; "
                                "config.strategy and config.mixed_precision apply to "
                                "--mode=train_fast")
            metrics = optimize.Optimization(self.config, workdir).run()
            print(f"Result:      {os.path.join(workdir, 'generated.png')}")
            print(f"Side by side: {os.path.join(workdir, 'side_by_side.png')}")
            print(f"TensorBoard: tensorboard --logdir {os.path.join(workdir, 'tb')}")
            print(f"Metrics:     {os.path.join(workdir, 'metrics.json')}")
            return metrics
        if mode == "eval" and kind == "optimize":
            return optimize.Optimization(self.config, workdir).evaluate()
        if kind == "optimize":
            raise UserError(f"--workdir={workdir} holds an optimisation run (--mode=train), "
                            f"which has no network for --mode={mode}; train the fast "
                            "stylizer with --mode=train_fast in another --workdir")
        if mode == "predict":
            return self._predict(workdir, input_path)
        trainer = trainer_lib.Trainer(self, workdir)
        if mode == "train_fast":
            metrics = trainer.train()
            if trainer.chief:
                print(f"TensorBoard: tensorboard --logdir {os.path.join(workdir, 'tb')}")
                print(f"Metrics:     {trainer.paths['metrics']}")
                print(f"SavedModel:  {trainer.paths['export']}")
            return metrics
        if mode == "eval":
            return trainer.evaluate()
        trainer.restore(required=True)
        print(f"SavedModel: {trainer.export()}")
        return None

    def _apply_flags(self, mode):
        """--content / --style into config.data (as the command line gave them)."""
        content, style = flag_value(_CONTENT), flag_value(_STYLE)
        if mode in ("predict", "export") and (content is not None or style is not None):
            given = "--content" if content is not None else "--style"
            raise UserError(f"{given} is for --mode=train and --mode=train_fast; "
                            f"--mode={mode} uses the stylizer trained in the workdir"
                            + (" on --input=PATH" if mode == "predict" else ""))
        if style is not None:
            self.config.data.style = style
        if content is not None:
            if mode == "train_fast":
                if not os.path.isdir(content):
                    raise UserError(f"--content={content}: --mode=train_fast takes a folder "
                                    "of content photographs")
                self.config.data.content_dir = content
            else:
                self.config.data.content = content

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
        if not hasattr(self, "_eval_terms"):
            costs, style_target = self.costs, self.style_target

            @tf.function
            def terms(content, stylized):
                content_target = costs.content_features(content)
                out = costs(stylized, content_target, style_target)
                out["input_style"] = costs(content, content_target, style_target)["style"]
                return out

            self._eval_terms = terms
        stylized = trainer_lib.predict_outputs(model, split, EVAL_BATCH, self.eval_example)
        content = images_lib.to_float(split.inputs)
        sums = {}
        for i in range(0, len(content), EVAL_BATCH):
            out = self._eval_terms(content[i:i + EVAL_BATCH], stylized[i:i + EVAL_BATCH])
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

    def _predict(self, workdir, input_path):
        """Stylizes --input (a file, or the image files under a folder) into
        DIR/predictions/, keeping the folder's layout; in a folder, unreadable
        images are skipped, each named in a warning, and counted."""
        if not input_path:
            raise UserError("--mode=predict needs --input=PATH (an image file or a folder)")
        if not os.path.exists(input_path):
            raise UserError(f"--input={input_path}: no such file or folder")
        export = os.path.join(workdir, "export")
        if not os.path.exists(os.path.join(export, "saved_model.pb")):
            raise UserError(f"no SavedModel in {export}; --mode=train_fast or --mode=export "
                            "first")
        out_dir = os.path.join(workdir, "predictions")
        one_file = os.path.isfile(input_path)
        if one_file:
            files = [input_path]
        else:
            files = sorted(os.path.join(top, name) for top, _, names in os.walk(input_path)
                           for name in names
                           if name.lower().endswith(images_lib.IMAGE_EXTENSIONS))
            if not files:
                raise UserError(f"--input={input_path}: no image files "
                                f"({', '.join(images_lib.IMAGE_EXTENSIONS)})")
        names_of = workdir_lib.output_names(files, input_path, keep_folders=True)
        serving, skipped = None, []
        for file in files:
            try:
                image = images_lib.read_image(file, "--input")
            except UserError as e:
                if one_file:
                    raise
                logging.warning("skipped %s", e)
                skipped.append(str(e))
                continue
            if serving is None:  # loaded once an input has proved readable
                serving = tf.saved_model.load(export).signatures["serving_default"]
            stylized = serving(images=tf.constant(image[None]))["images"][0].numpy()
            out = os.path.join(out_dir, names_of[file] + "_stylized.png")
            print(f"{file} -> {images_lib.save_png(stylized, out)}")
        if len(skipped) == len(files):
            raise UserError(f"--input={input_path}: none of its {len(files)} image files is "
                            f"a readable image (first: {skipped[0]})")
        if skipped:
            logging.warning("skipped %d of the %d image files in --input=%s (named above)",
                            len(skipped), len(files), input_path)
        return None


