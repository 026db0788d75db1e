"""The shared training loop: distribution, checkpoints, TensorBoard, export.

In the spirit of Orbit, the loop is apart from the task: an app's `Task` says
what its data, model, loss and metrics are, and `Trainer` runs it under any
tf.distribute strategy with its own distributed train step (Keras 3's `fit`
does not support MultiWorkerMirroredStrategy, keras-team/keras#20585):

    strategy.run(replica_step)   # one tf.function(jit_compile=xla_enabled(config))
      loss = sum(per-example loss) / global batch   # so replica sums add up
      grads -> optimizer.apply (Keras all-reduces them across replicas)

Training is step-based: `epochs * steps_per_epoch` steps over the endless,
deterministic stream of apps.core.data.train_stream. A checkpoint (model,
optimizer, the random-generator state of dropout layers, the step and the
time spent) is written every `train.checkpoint_every` steps and at each epoch
end; starting again in the same workdir resumes from the latest one and, since
the data stream is a function of the step only, reaches the same weights an
uninterrupted run would.
"""

import contextlib
import math
import numbers
import os
import shutil
import sys
import time

import keras
import tensorflow as tf
from absl import logging

from apps.core import columns, diagnosis, faults, hparams, modes
from apps.core import config as config_lib
from apps.core import data as data_lib
from apps.core import export as export_lib
from apps.core import strategy as strategy_lib
from apps.core import workdir as workdir_lib
from apps.core.errors import UserError

#: the most train steps run in one call (Trainer.steps_in_call), so that the
#: progress bar and an interrupt still answer within a few steps
MAX_STEPS_PER_CALL = 20


class Trainer:
    """Trains, evaluates and exports one `Task` in one workdir."""

    def __init__(self, task, workdir, strategy=None):
        """`strategy` overrides config.strategy (for tests and library use)."""
        self.task = task
        self.config = config = task.config
        self.workdir = workdir
        self.paths = workdir_lib.paths(workdir)
        self._beside_export = {}
        #: called as on_validation(epoch, metrics) after each epoch's validation
        #: (a tuning trial's report; it may raise to stop the run, apps.core.tune)
        self.on_validation = None
        self._last_validation = (None, None)  # (step, metrics) of the latest one
        self._skipped_mark = columns.SKIPPED.mark()
        self.strategy = strategy or strategy_lib.make_strategy(config.strategy, config.tpu)
        self.chief = strategy_lib.is_chief(self.strategy)
        scale_loss = strategy_lib.set_precision(config.mixed_precision)
        keras.utils.set_random_seed(config.seed)

        self.data = task.load_data()
        # The train-dev slice (apps.core.diagnosis), held out before anything
        # reads the training split (the epoch order, the steps per epoch).
        self.train_dev = diagnosis.carve(self.data, config.get("diagnosis", {}).get(
            "train_dev_fraction", 0.0), config.seed)
        self.vocabulary = task.vocabulary()
        if self.vocabulary is not None:
            workdir_lib.keep_vocabulary(workdir, self.vocabulary)
        self.global_batch = config.train.batch_size
        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise UserError(f"config.train.batch_size = {self.global_batch} must be a "
                            f"multiple of the {replicas} replicas")
        _, epoch_length = task.epoch_order() or (None, len(self.data.train))
        self.steps_per_epoch = data_lib.steps_per_epoch(
            epoch_length, self.global_batch, "" if self.train_dev is None else
            f" (and {len(self.train_dev)} held out as train-dev, "
            "config.diagnosis.train_dev_fraction)")
        self.total_steps = config.train.epochs * self.steps_per_epoch

        with self.strategy.scope():
            self.model = task.build_model()
            if replicas > 1:
                _synchronize_batch_norm(self.model)
            # With loss scaling, clipping must follow unscaling inside Keras's
            # LossScaleOptimizer (per replica); otherwise the trainer clips.
            self.optimizer = task.make_optimizer(self.steps_per_epoch, self.total_steps,
                                                 clip=scale_loss)
            if scale_loss:
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                       name="train_seconds",
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step, seconds=self.seconds,
            # Keras's seed generators (dropout) are model variables that the
            # model's own checkpoint tracking leaves out; listing every model
            # variable here keeps them, so a resumed run draws the same masks.
            model_variables=list(self.model.variables))
        ckpt_dir = self.paths["ckpt"]
        if not self.chief:
            # Every worker must take part in a save; only the chief's is kept.
            ckpt_dir = os.path.join(ckpt_dir, f".worker-{strategy_lib.worker_id(self.strategy)}")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, ckpt_dir, max_to_keep=config.train.max_checkpoints)

    # ------------------------------------------------------------------ state

    def restore(self, required=False):
        """Restores the latest checkpoint of this workdir; returns True if one was found.

        What a write that failed or was killed left (ckpt-N_temp/) is removed first."""
        _remove_partial_checkpoints(self.paths["ckpt"])
        latest = tf.train.latest_checkpoint(self.paths["ckpt"])
        if latest is None:
            if required:
                raise UserError(f"no checkpoint in {self.paths['ckpt']}; train first "
                                f"(--mode=train --workdir={self.workdir})")
            return False
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            # A checkpoint of another model (shapes) or a damaged file.
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{latest}: does not fit this run's model ({reason[:300]}); "
                            "choose another --workdir or the config it was trained "
                            "with") from None
        logging.info("Restored %s (step %d)", latest, int(self.step.numpy()))
        return True

    def save(self):
        with quiet(), self.writing("the checkpoint", self.manager.directory):
            self.manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)

    @contextlib.contextmanager
    def writing(self, what, where):
        """A failed write (a full disk, no permission) as one line saying what
        could not be written where; what was written before stays (checkpoints
        are written beside the last one, exports swapped in whole)."""
        try:
            yield
        except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError,
                tf.errors.UnknownError, OSError) as e:
            reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
            reason = " ".join(str(reason).split())[:200]
            _remove_partial_checkpoints(self.paths["ckpt"])
            latest = tf.train.latest_checkpoint(self.paths["ckpt"])
            raise UserError(f"could not write {what} to {where} ({reason}); kept "
                            f"{latest or 'no checkpoint'} and {self.paths['export']} as they "
                            "were; free space (or fix the folder) and run the same command "
                            "again") from None

    # ------------------------------------------------------------- training

    def train_step_function(self, terms=False, steps=False):
        """The distributed train step: `step(iterator)` -> the global mean loss.

        With `terms`, it returns (loss, {term: global mean}) for a task whose
        per_example_loss returns its terms as a dict (TensorBoard's loss_<term>).

        With `steps`, it returns `train_steps(iterator, count)` instead, which
        runs `count` (an int32 tensor, so any count reuses one trace) steps in
        one call and returns (the loss of each step, the last step's terms),
        advancing self.step after each step. A call per step costs a function
        launch and a host round trip, each a wait for a busy CPU; the smaller
        default models train up to 1.3x faster in calls of several steps
        (bench/training.py measures it). The steps are the same ops in the
        same order, so the weights are the same (tests/apps/core/test_train_steps.py).
        """
        model, optimizer, task = self.model, self.optimizer, self.task
        global_batch = self.global_batch
        scale = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        clipnorm = 0.0 if scale else self.config.optimizer.clipnorm
        replicas = self.strategy.num_replicas_in_sync
        step_counter = self.step
        # The NaN fault (tests only) adds its op to the graph only when asked for.
        poison = faults.poison_loss if faults.nan_at_step() else None

        def replica_step(inputs, targets):
            with tf.GradientTape() as tape:
                outputs = tf.nest.map_structure(_to_float32, model(inputs, training=True))
                per_example, parts = _loss_terms(task.per_example_loss(targets, outputs))
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                if poison:
                    loss = poison(loss, step_counter)
                scaled = optimizer.scale_loss(loss) if scale else loss
            grads = tape.gradient(scaled, model.trainable_variables)
            if clipnorm:
                grads = _clip_global_norm(grads, clipnorm, replicas)
            optimizer.apply(grads, model.trainable_variables)
            means = {name: tf.nn.compute_average_loss(part, global_batch_size=global_batch)
                     for name, part in parts.items()}
            return loss, means

        # No autograph, as everywhere in the apps (apps.core.data.graph_code).
        replica_step = tf.function(replica_step, autograph=False,
                                   jit_compile=config_lib.xla_enabled(
                                       self.config, self.strategy.num_replicas_in_sync))

        def one_step(iterator):
            inputs, targets = next(iterator)
            per_replica = self.strategy.run(replica_step, args=(inputs, targets))
            return tf.nest.map_structure(
                lambda x: self.strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None),
                per_replica)

        @tf.function(autograph=False)
        def train_step(iterator):
            loss, means = one_step(iterator)
            return (loss, means) if terms else loss

        @tf.function(autograph=False)
        def train_steps(iterator, count):
            # The first step stands outside the loop so that the loop can carry
            # the terms' structure, which tracing the step reveals.
            loss, means = one_step(iterator)
            step_counter.assign_add(1)
            losses = tf.TensorArray(tf.float32, size=count).write(0, loss)

            def body(i, losses, means):
                loss, means = one_step(iterator)
                step_counter.assign_add(1)
                return i + 1, losses.write(i, loss), means

            # One iteration at a time: each step needs the weights of the last.
            _, losses, means = tf.while_loop(lambda i, *_: i < count, body,
                                             (tf.constant(1), losses, means),
                                             parallel_iterations=1)
            return losses.stack(), means

        return train_steps if steps else train_step

    def steps_in_call(self, step):
        """Steps to run in one call from `step`: to the next step that logs,
        checkpoints or ends an epoch (so each of those sees its own step's
        loss, learning rate and weights), and at most MAX_STEPS_PER_CALL."""
        train = self.config.train
        periods = [self.steps_per_epoch, train.log_every] + (
            [train.checkpoint_every] if train.checkpoint_every else [])
        return min([MAX_STEPS_PER_CALL] + [p - step % p for p in periods])

    def train_dataset(self, start_step):
        order, length = self.task.epoch_order() or (None, None)

        def dataset_fn(input_context):
            return data_lib.train_stream(
                self.data.train, self.global_batch, self.config.seed, start_step,
                augment=self.task.train_example, input_context=input_context,
                order=order, epoch_length=length)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def train(self):
        """Trains to the end (resuming if possible), then tests, exports, writes metrics."""
        done = workdir_lib.read_metrics(self.workdir)
        self.restore()
        step = int(self.step.numpy())
        if step >= self.total_steps and done is not None:
            logging.info("%s already finished (step %d); not retraining", self.workdir, step)
            return done
        if step == 0:
            self.task.initialize(self.model)
        os.makedirs(self.workdir, exist_ok=True)
        if self.chief:
            config_lib.save(self.config, self.workdir)
            if self.vocabulary is not None:
                workdir_lib.keep_vocabulary(self.workdir, self.vocabulary, save=True)
        writers = self._writers()
        if step == 0 and self.chief:
            task = self.task
            names = [n if n in task.unprefixed_metrics else f"test_{n}"
                     for n in task.headline_metrics]
            validation = [f"val_{n}" for n in task.headline_metrics]
            hparams.write_hparams(writers["train"], self.config,
                                  names + validation + ["examples_per_sec", "train_seconds"])

        train_steps = self.train_step_function(terms=True, steps=True)
        iterator = iter(self.train_dataset(step))
        examples, busy, traced = 0, 0.0, False
        started = time.perf_counter()
        seconds_before = float(self.seconds.numpy())
        progbar = None
        while step < self.total_steps:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            if progbar is None:
                if self.chief:
                    print(f"Epoch {epoch + 1}/{self.config.train.epochs}", flush=True)
                progbar = keras.utils.Progbar(self.steps_per_epoch, unit_name="step",
                                              verbose=1 if sys.stdout.isatty() else 2)
            # The first call of a process also traces and compiles: one step,
            # left out of examples/s; later calls run to the next boundary.
            count = self.steps_in_call(step) if traced else 1
            t0 = time.perf_counter()
            losses, terms = train_steps(iterator, tf.constant(count, tf.int32))
            losses = losses.numpy().tolist()
            if traced:
                examples += count * self.global_batch
                busy += time.perf_counter() - t0
            traced = True
            speed = examples / busy if busy else 0.0
            for done, loss in enumerate(losses, 1):
                step += 1
                if not math.isfinite(loss):
                    raise UserError(
                        f"the training loss became {loss} at step {step}; stopped without "
                        f"saving, so {self.paths['ckpt']} keeps the last good checkpoint and "
                        f"{self.paths['export']} the last export (lower the learning rate "
                        "or set config.optimizer.clipnorm)")
                progbar.update(in_epoch + done, [("loss", loss), ("examples/s", speed)])
            faults.after_train_call(step)
            if self.chief and step % self.config.train.log_every == 0:
                with writers["train"].as_default(step=step):
                    tf.summary.scalar("loss", loss)
                    for name, value in terms.items():
                        tf.summary.scalar(f"loss_{name}", float(value))
                    tf.summary.scalar("learning_rate", self._learning_rate())
                    tf.summary.scalar("examples_per_sec", speed)
                # On disk now: a run that stops with an error exits at once (apps.core.main).
                writers["train"].flush()
            end_of_epoch = step % self.steps_per_epoch == 0
            every = self.config.train.checkpoint_every
            if end_of_epoch or (every and step % every == 0):
                self.seconds.assign(seconds_before + time.perf_counter() - started)
                self.save()
            if end_of_epoch:
                progbar = None
                self._check_skipped()
                val, images = self.evaluate_split(self.data.val, "validation")
                line = modes.headline_line(f"epoch {epoch + 1} validation", val,
                                           self.task.headline_metrics)
                if self.chief and line:
                    print(line, flush=True)
                if self.chief:
                    self._write_eval(writers["eval"], step, val, images)
                self._last_validation = (step, val)
                if epoch == 0 and self.config.get("diagnosis", {}).get("metric"):
                    diagnosis.check_metric(self.config, val)  # not only at the end
                if self.on_validation is not None:
                    self.on_validation(epoch + 1, val)
        faults.before_finish()
        # The last step is an epoch end, so the last checkpoint is already written.
        return self.finish(examples_per_sec=examples / busy if busy else None)

    def finish(self, examples_per_sec=None):
        """Tests, diagnoses (apps.core.diagnosis), exports and writes metrics.json
        (chief only), once."""
        test, images = self.evaluate_split(self.data.test, "test")
        step = int(self.step.numpy())
        if self.chief:  # before another evaluation replaces what Task.write_summaries shows
            self._write_eval(self._writers()["eval"], step, test, images, prefix="test_")
        metrics = self.named(test)
        validation = self.final_validation()
        metrics.update({f"val_{k}": float(validation[k]) for k in self.task.headline_metrics
                        if isinstance(validation.get(k), numbers.Real)
                        and not isinstance(validation[k], bool)})
        if self.config.get("diagnosis", {}).get("metric"):
            metrics.update(diagnosis.diagnose(self, test, validation))
        previous = workdir_lib.read_metrics(self.workdir) or {}
        metrics["examples_per_sec"] = (examples_per_sec if examples_per_sec is not None
                                       else previous.get("examples_per_sec"))
        metrics["train_seconds"] = float(self.seconds.numpy())
        metrics["steps"] = int(self.step.numpy())
        metrics.update(self.task.run_metrics(metrics))
        skipped = columns.SKIPPED.since(self._skipped_mark)
        if skipped:  # files that could not be read, each named in the log
            metrics["skipped_files"] = skipped
        if self.chief:
            diagnosis.write_summaries(self._writers()["eval"], metrics, step)
            hparams.write_final(self._writers()["train"], metrics, step)
            self.export()
            with self.writing("metrics.json", self.workdir):
                workdir_lib.write_metrics(self.workdir, metrics)
        return metrics

    def _check_skipped(self):
        """Stops the run when more than config.train.max_skipped_fraction of the
        training split could not be read (each file is named in the log)."""
        skipped = columns.SKIPPED.since(self._skipped_mark)
        allowed = self.config.train.max_skipped_fraction * len(self.data.train)
        if skipped > allowed:
            raise UserError(
                f"{skipped} training files could not be read (named in the log), more than "
                f"config.train.max_skipped_fraction = {self.config.train.max_skipped_fraction} "
                f"of the {len(self.data.train)} training examples; fix or remove them and run "
                f"the same command again (the checkpoints in {self.paths['ckpt']} are kept)")

    def evaluate_split(self, split, name):
        """task.evaluate on `split`; a file of it that cannot be read is a
        UserError naming it (metrics pair outputs with targets by position, so
        evaluation cannot skip it as training does; checkpoints are kept)."""
        try:
            return self.task.evaluate(self.model, split)
        except tf.errors.InvalidArgumentError as e:
            if data_lib.UNREADABLE_IN_EVALUATION not in str(e):
                raise
            raise UserError(f"the {name} split has a file that cannot be read "
                            f"({columns.SKIPPED.last}); remove or replace it and run the "
                            f"same command again (the checkpoints in {self.paths['ckpt']} "
                            "are kept)") from None

    def final_validation(self):
        """The final model's validation metrics: the last epoch's, or evaluated
        now when a resumed run had no epoch left. metrics.json keeps the headline
        ones as val_<name> (what a model is chosen by, where test_ is what it is
        reported by); the diagnosis reads them all."""
        step, val = self._last_validation
        if step != int(self.step.numpy()):
            val, _ = self.evaluate_split(self.data.val, "validation")
        return val

    def named(self, metrics):
        """metrics.json's names for the test split's metrics: test_<name>, but the
        model's own facts (Task.unprefixed_metrics) as they are."""
        keep = self.task.unprefixed_metrics
        return {(k if k in keep else f"test_{k}"): v for k, v in metrics.items()}

    def outputs(self):
        """{label: where} of a finished run, for its summary."""
        return {"TensorBoard": f"tensorboard --logdir {os.path.dirname(self.paths['tb_train'])}",
                "Metrics": self.paths["metrics"], "SavedModel": self.paths["export"],
                **self._beside_export}

    # ---------------------------------------------------------- eval, export

    def evaluate(self):
        """--mode=eval: the latest checkpoint on the test split."""
        self.restore(required=True)
        metrics, _ = self.evaluate_split(self.data.test, "test")
        return self.named(metrics)

    def export(self, restore=False):
        """Writes DIR/export atomically (see apps.core.export), with
        config.export.tflite DIR/export_tflite (see apps.core.tflite), and
        what the task writes beside them. Returns {label: path} of what it wrote.
        `restore` first restores the latest checkpoint (--mode=export)."""
        if restore:
            self.restore(required=True)
        endpoints = self.task.export_endpoints(self.model)
        with quiet(), self.writing("the SavedModel", self.paths["export"]):
            path = export_lib.write_saved_model(
                self.paths["export"], self.model, endpoints,
                variable_collections={"model_variables": self.model.variables})
        logging.info("Exported SavedModel to %s", path)
        if self.config.get("export", {}).get("tflite"):
            from apps.core import tflite

            folder = os.path.join(self.workdir, "export_tflite")
            model = tflite.float32_copy(self.model) if self.config.mixed_precision else self.model
            serving = (endpoints if model is self.model
                       else self.task.export_endpoints(model))["serving_default"]
            with quiet():
                sizes = tflite.write_tflite(folder, model, *serving)
            logging.info("Exported TensorFlow Lite models to %s (%s)", folder, ", ".join(
                f"{name} {size / 1024:.1f} KiB" for name, size in sizes.items()))
        written = {"SavedModel": path}
        if self.chief:
            self._beside_export = self.task.write_beside_export(self.model, self.workdir)
            written.update(self._beside_export)
        return written

    # ------------------------------------------------------------ summaries

    def _writers(self):
        if not hasattr(self, "_summary_writers"):
            if self.chief:
                self._summary_writers = {
                    "train": tf.summary.create_file_writer(self.paths["tb_train"]),
                    "eval": tf.summary.create_file_writer(self.paths["tb_eval"])}
            else:
                noop = tf.summary.create_noop_writer()
                self._summary_writers = {"train": noop, "eval": noop}
        return self._summary_writers

    def _learning_rate(self):
        lr = self.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

    def _write_eval(self, writer, step, metrics, images, prefix="val_"):
        with writer.as_default(step=step):
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and value is not None:
                    tf.summary.scalar(prefix + name, value)
            for name, image in images.items():
                tf.summary.image(prefix + name, image, max_outputs=len(image))
            self.task.write_summaries(prefix)
        writer.flush()


def _remove_partial_checkpoints(folder):
    """Removes what an interrupted checkpoint write left (TensorFlow writes
    ckpt-N_temp/ and renames it when done)."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith("_temp"):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _synchronize_batch_norm(model):
    """Makes every layers.BatchNorm of `model` normalize over the global batch.

    With several replicas each one sees a slice of the global batch; batch
    statistics of the slices would make the result depend on the number of
    replicas and workers. All-reducing them (BatchNorm's `synchronized`)
    keeps `config.train.batch_size` the batch that BatchNorm normalizes over,
    so one worker and several reach the same weights up to the order of the
    floating-point sums.
    """
    from layers import BatchNorm

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, BatchNorm):
            layer.synchronized = True


def _loss_terms(per_example):
    """(per-example loss, {term: per-example term}) from a task's
    per_example_loss, which returns either the loss or its terms as a dict
    (then the loss is their sum)."""
    if isinstance(per_example, dict):
        parts = {name: tf.cast(t, tf.float32) for name, t in per_example.items()}
        return tf.add_n(list(parts.values())), parts
    return tf.cast(per_example, tf.float32), {}


def _to_float32(tensor):
    """Mixed precision computes in 16 bits; losses are taken in float32."""
    return tf.cast(tensor, tf.float32) if tensor.dtype.is_floating else tensor


def _clip_global_norm(grads, clipnorm, replicas):
    """Clips the global norm of the gradient summed over replicas.

    Each replica holds a part of the gradient and Keras's optimizer sums the
    parts; so the parts are summed here first, clipped as a whole, and each
    replica passes on 1/replicas of the result.
    """
    # The norm must be that of the summed gradient, so sparse gradients
    # (IndexedSlices of embedding rows, whose repeated rows the norm of the
    # slices would count apart) are made dense first: exact, at the cost of
    # one dense embedding-sized gradient per step when clipping is on.
    grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    if replicas > 1:
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grads, _ = tf.clip_by_global_norm(grads, clipnorm)
    return [g / replicas for g in grads] if replicas > 1 else grads


@contextlib.contextmanager
def quiet():
    """Silences TensorFlow's INFO chatter while saving (one line per shard)."""
    level = logging.get_verbosity()
    logging.set_verbosity(max(level, logging.WARNING))
    try:
        yield
    finally:
        logging.set_verbosity(level)
