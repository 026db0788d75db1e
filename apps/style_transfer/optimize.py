"""The optimisation method of Gatys et al. (2015), as in the course's notes.

The generated image G is the variable: starting from the content image plus
uniform noise, G <- clip(Adam step on J(G), 0, 1), where

    J(G) = alpha * J_content(C, G) + beta * J_style(S, G) + tv_weight * TV(G)

(apps/style_transfer/costs.py). The step is one tf.function, jit-compiled
with XLA when it is on (config.xla, apps.core.config.xla_enabled); the
optimizer is config.optimize.optimizer from this project's `optimizers` (its
"epochs" are steps here).

The workdir gets what a Trainer run writes: config.json, tb/train (the cost
terms, steps/sec, the image every config.optimize.image_every steps), tb/eval
(the final costs and the content | style | result picture), ckpt/ (G, the
optimizer's state, the step and the initial costs: a second run resumes, a
finished run is not redone), images/step_NNNNNN.png, and at the end
generated.png, side_by_side.png and metrics.json. `Optimization` has the
shared Trainer's interface, so the core's --mode=train and --mode=eval run it
(StyleTransferTask.make_trainer).
"""

import json
import math
import os
import sys
import time

import keras
import tensorflow as tf
from absl import logging

from apps.core import config as config_lib
from apps.core import faults, hparams
from apps.core import workdir as workdir_lib
from apps.core.errors import UserError
from apps.core.optim import make_optimizer
from apps.core.trainer import quiet
from apps.style_transfer import costs as costs_lib
from apps.style_transfer import extractor as extractor_lib
from apps.style_transfer import images as images_lib

# Fields that must not change between runs of one workdir (G would not fit).
SAME_IMAGES = ("data.content", "data.style", "data.image_size", "data.keep_aspect")


#: the figures TensorBoard's HParams dashboard compares optimisation runs by
FINAL_METRICS = ("style_cost_final", "content_cost_final", "total_cost_final",
                 "style_cost_reduction", "train_seconds")


def workdir_kind(workdir):
    """"optimize", "fast" or None: what the latest checkpoint in DIR/ckpt holds."""
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
    if latest is None:
        return None
    names = [name for name, _ in tf.train.list_variables(latest)]
    return "optimize" if any(n.startswith("generated/") for n in names) else "fast"


def check_method(workdir, mode):
    """Refuses a mode of the other method than the run in `workdir`: the
    optimisation method's image is no stylizer, nor its checkpoint a network."""
    kind = workdir_kind(workdir)
    if kind == "fast" and mode == "train":
        raise UserError(f"--workdir={workdir} holds a --mode=train_fast run; the "
                        "optimisation method needs its own --workdir")
    if kind == "optimize" and mode not in ("train", "eval"):
        raise no_network(workdir, mode)


def no_network(workdir, mode):
    """The UserError of a mode that needs the fast stylizer in an optimisation workdir."""
    return UserError(f"--workdir={workdir} holds an optimisation run (--mode=train), which "
                     f"has no network for --mode={mode}; train the fast stylizer with "
                     "--mode=train_fast in another --workdir")


def recorded_config(workdir):
    """DIR/config.json of an earlier run as a dict; {} when there is none or it is
    unreadable (the core's workdir check then names the file)."""
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def check_same_fields(config, workdir, fields=SAME_IMAGES):
    """UserError when DIR/config.json records another value of one of `fields`."""
    previous = recorded_config(workdir)
    for field in fields:
        section, key = field.split(".")
        before = previous.get(section, {}).get(key)
        now = config_lib.lookup(config, field)
        if isinstance(before, list):
            before = tuple(before)
        if before is not None and before != now:
            raise UserError(f"--workdir={workdir} holds a run with config.{field} = "
                            f"{before!r}, not {now!r}; choose another --workdir")


class Optimization:
    """One optimisation run in one workdir, with the shared Trainer's interface
    (train, evaluate, export, outputs, chief), so that the core's train and
    eval modes run it (StyleTransferTask.make_trainer)."""

    #: one process, one device: it always writes the workdir
    chief = True

    def __init__(self, config, workdir):
        self.config = config
        self.workdir = workdir
        self.paths = workdir_lib.paths(workdir)
        self.steps = config.optimize.steps
        check_same_fields(config, workdir)

    # ------------------------------------------------------------------ setup

    def _setup(self):
        config = self.config
        keras.utils.set_random_seed(config.seed)
        content = images_lib.read_image(config.data.content, "--content")
        style = images_lib.read_image(config.data.style, "--style")
        self.content_u8, self.style_u8 = images_lib.content_and_style(
            content, style, config.data.image_size, config.data.keep_aspect)
        logging.info("content %s, style %s, generated image %dx%d", config.data.content,
                     config.data.style, self.content_u8.shape[1], self.content_u8.shape[0])
        self.extractor = extractor_lib.build(config,
                                             costs_lib.Costs.layer_names(config.cost))
        self.costs = costs_lib.Costs(self.extractor, config.cost)
        content = tf.constant(images_lib.to_float(self.content_u8))
        self.content_target = tf.constant(self.costs.content_features(content))
        self.style_target = {k: tf.constant(v) for k, v in self.costs.style_features(
            tf.constant(images_lib.to_float(self.style_u8))).items()}

        noise = tf.random.stateless_uniform(content.shape, seed=[config.seed, 7],
                                            minval=-config.optimize.noise,
                                            maxval=config.optimize.noise)
        self.generated = keras.Variable(tf.clip_by_value(content + noise, 0.0, 1.0),
                                        name="generated")
        self.optimizer = make_optimizer(config.optimize.optimizer, 1, self.steps)
        self.optimizer.build([self.generated])
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="seconds")
        self.initial = {k: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=k)
                        for k in ("content", "style", "tv", "total")}
        self.checkpoint = tf.train.Checkpoint(
            generated=self.generated, optimizer=self.optimizer, step=self.step,
            seconds=self.seconds, initial=self.initial)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.paths["ckpt"], max_to_keep=config.train.max_checkpoints)

    def restore(self, required=False):
        latest = self.manager.latest_checkpoint
        if latest is None:
            if required:
                raise self._no_checkpoint("--mode=train")
            return False
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise UserError(f"{latest}: does not fit this run ({str(e).splitlines()[0]}); "
                            "choose another --workdir") from None
        logging.info("Restored %s (step %d)", latest, int(self.step.numpy()))
        return True

    def _no_checkpoint(self, train_modes):
        return UserError(f"no checkpoint in {self.paths['ckpt']}; train first with "
                         f"{train_modes}")

    def _saved_step(self):
        latest = tf.train.latest_checkpoint(self.paths["ckpt"])
        if latest is None:
            return 0
        return int(tf.train.load_checkpoint(latest).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))

    # -------------------------------------------------------------- the step

    def cost_terms(self):
        """The terms of J at the current G (floats)."""
        terms = self.costs(self.generated, self.content_target, self.style_target)
        return {k: float(v) for k, v in terms.items()}

    def step_function(self):
        generated, optimizer, costs = self.generated, self.optimizer, self.costs
        content_target, style_target = self.content_target, self.style_target
        step_counter = self.step

        def step():
            with tf.GradientTape() as tape:
                terms = costs(generated.value, content_target, style_target)
                terms["total"] = faults.poison_loss(terms["total"], step_counter)
            grad = tape.gradient(terms["total"], generated.value)
            optimizer.apply([grad], [generated])
            generated.assign(tf.clip_by_value(generated, 0.0, 1.0))
            return terms

        return tf.function(step, autograph=False,
                           jit_compile=config_lib.xla_enabled(self.config))

    # --------------------------------------------------------------- the run

    def train(self):
        """Optimises G to config.optimize.steps (resuming); returns the metrics."""
        if self.config.strategy != "default" or self.config.mixed_precision:
            logging.warning("the optimisation method runs on one device in float32; "
                            "config.strategy and config.mixed_precision apply to "
                            "--mode=train_fast")
        done = workdir_lib.read_metrics(self.workdir)
        if done is not None and self._saved_step() >= self.steps:
            logging.info("%s already finished (step %d); not redone", self.workdir,
                         self._saved_step())
            return done
        self._setup()
        self.restore()
        step = int(self.step.numpy())
        os.makedirs(self.workdir, exist_ok=True)
        config_lib.save(self.config, self.workdir)
        train_writer = tf.summary.create_file_writer(self.paths["tb_train"])
        if step == 0:
            hparams.write_hparams(train_writer, self.config, FINAL_METRICS)
            initial = self.cost_terms()
            for k, v in initial.items():
                self.initial[k].assign(v)
            logging.info("initial costs: %s", _fmt(initial))
            self._write_image(train_writer, 0)
        initial = {k: float(v.numpy()) for k, v in self.initial.items()}

        step_fn = self.step_function()
        busy, timed, traced = 0.0, 0, False
        started = time.perf_counter()
        seconds_before = float(self.seconds.numpy())
        tty = sys.stdout.isatty()
        progbar = keras.utils.Progbar(self.steps, unit_name="step", verbose=1 if tty else 2)
        log_every, image_every = self.config.train.log_every, self.config.optimize.image_every
        checkpoint_every = self.config.train.checkpoint_every
        while step < self.steps:
            t0 = time.perf_counter()
            terms = {k: float(v) for k, v in step_fn().items()}
            if traced:  # the first call of a process also traces and compiles
                busy += time.perf_counter() - t0
                timed += 1
            traced = True
            step += 1
            if not math.isfinite(terms["total"]):
                raise UserError(f"the cost became {terms['total']} at step {step}; stopped "
                                f"without saving, so {self.paths['ckpt']} keeps the last good "
                                "checkpoint (lower config.optimize.optimizer.learning_rate)")
            self.step.assign(step)
            faults.after_train_call(step)
            speed = timed / busy if busy else 0.0
            progbar.update(step, [("J", terms["total"]), ("style", terms["style"]),
                                  ("content", terms["content"]), ("steps/s", speed)])
            if step % log_every == 0:
                with train_writer.as_default(step=step):
                    for k, v in terms.items():
                        tf.summary.scalar(f"{k}_cost" if k != "tv" else "total_variation", v)
                    tf.summary.scalar("steps_per_sec", speed)
            if step % image_every == 0 or step == self.steps:
                self._write_image(train_writer, step)
                if not tty:
                    logging.info("step %d/%d: %s, %.2f steps/s", step, self.steps,
                                 _fmt(terms), speed)
            if step == self.steps or (checkpoint_every and step % checkpoint_every == 0):
                self.seconds.assign(seconds_before + time.perf_counter() - started)
                with quiet():
                    self.manager.save(checkpoint_number=step)
        faults.before_finish()
        train_writer.flush()
        previous = workdir_lib.read_metrics(self.workdir) or {}
        speed = timed / busy if busy else previous.get("steps_per_sec")
        return self._finish(initial, speed, train_writer)

    def _finish(self, initial, steps_per_sec, train_writer):
        final = self.cost_terms()
        result = images_lib.to_uint8(self.generated.numpy()[0])
        images_lib.save_png(result, os.path.join(self.workdir, "generated.png"))
        picture = images_lib.side_by_side(self.content_u8, self.style_u8, result)
        images_lib.save_png(picture, os.path.join(self.workdir, "side_by_side.png"))
        metrics = {
            "content_cost_initial": initial["content"],
            "content_cost_final": final["content"],
            "style_cost_initial": initial["style"],
            "style_cost_final": final["style"],
            "style_cost_reduction": 1.0 - final["style"] / initial["style"]
            if initial["style"] else None,
            "total_variation_initial": initial["tv"],
            "total_variation_final": final["tv"],
            "total_cost_initial": initial["total"],
            "total_cost_final": final["total"],
            "steps": int(self.step.numpy()),
            "steps_per_sec": steps_per_sec,
            "examples_per_sec": steps_per_sec,  # one image per step
            "train_seconds": float(self.seconds.numpy()),
            "extractor": self.extractor.kind,
        }
        writer = tf.summary.create_file_writer(self.paths["tb_eval"])
        with writer.as_default(step=metrics["steps"]):
            for k, v in metrics.items():
                if isinstance(v, float):
                    tf.summary.scalar(k, v)
            tf.summary.image("content_style_result", picture[None])
        writer.flush()
        hparams.write_final(train_writer, metrics, metrics["steps"])
        workdir_lib.write_metrics(self.workdir, metrics)
        logging.info("final costs: %s", _fmt(final))
        return metrics

    def _write_image(self, writer, step):
        image = images_lib.to_uint8(self.generated.numpy()[0])
        images_lib.save_png(image, os.path.join(self.workdir, "images", f"step_{step:06d}.png"))
        with writer.as_default(step=step):
            tf.summary.image("generated", image[None])

    def evaluate(self):
        """--mode=eval: the cost terms of the latest checkpoint's image, named as
        the fast stylizer's test costs are (test_style_cost, ...)."""
        if workdir_kind(self.workdir) is None:  # before the extractor is built
            raise self._no_checkpoint("--mode=train or --mode=train_fast")
        self._setup()
        self.restore(required=True)
        terms = self.cost_terms()
        return {"test_content_cost": terms["content"], "test_style_cost": terms["style"],
                "test_total_variation": terms["tv"], "test_total_cost": terms["total"],
                "steps": int(self.step.numpy())}

    def export(self, restore=False):
        """--mode=export: refused, as the optimisation method trains no network."""
        if workdir_kind(self.workdir) is None:
            raise self._no_checkpoint("--mode=train_fast")
        raise no_network(self.workdir, "export")

    def outputs(self):
        """{label: where} of a finished run, for its summary."""
        return {"Result": os.path.join(self.workdir, "generated.png"),
                "Side by side": os.path.join(self.workdir, "side_by_side.png"),
                "TensorBoard": f"tensorboard --logdir {os.path.join(self.workdir, 'tb')}",
                "Metrics": self.paths["metrics"]}


def _fmt(terms):
    return ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
