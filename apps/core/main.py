"""The absl entrypoint every app shares.

    python -m apps.<app> --config=configs/<app>.py[:variant] --workdir=DIR \\
        [--mode=train|eval|predict|export] [--input=PATH] [--config.a.b=value ...]

An app's __main__.py is two lines: `from apps.core.main import run` and
`run(MyTask)`. A user's mistake (unknown or mistyped config field, value out
of range, missing file) ends the run with one line on stderr and exit status 2.
"""

import ast
import json
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from apps.core import config as config_lib
from apps.core import export as export_lib
from apps.core import optim
from apps.core.errors import UserError

MODES = ("train", "eval", "predict", "export")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to configs/<app>.py (optionally :variant).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, TensorBoard, export.")
_MODE = flags.DEFINE_string("mode", "train", "train | eval | predict | export, or an "
                            "app's own mode (e.g. face_recognition's enroll).")
_INPUT = flags.DEFINE_string("input", None, "--mode=predict: an input file or folder.")


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    """absl's parser, with a user's mistakes reported on one line."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        _fail(str(e).splitlines()[0])
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # ml_collections raises these for an unknown field of a locked config,
        # with a message that may be the repr of a message (of a KeyError's).
        text = str(e.args[0] if e.args else e)
        for _ in range(3):
            try:
                unquoted = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                break
            if not isinstance(unquoted, str):
                break
            text = unquoted
        text = " ".join(text.split())
        _fail(f"{_bad_config_flag(argv, text)}: unknown or invalid config field ({text})")
    return rest


def _bad_config_flag(argv, message):
    """The --config.a.b flag whose path holds the field named first in `message`
    (as ml_collections names it: 'widht' Did you mean ...), or "--config"."""
    named = re.match(r"""\W*([\w-]+)""", message)
    for arg in argv:
        if arg.startswith("--config."):
            path = arg.split("=")[0]
            if named and named.group(1) in path[len("--config."):].split("."):
                return path
    return "--config"


def flag_value(holder):
    """An app's own flag (e.g. face_recognition's --gallery) as given on the
    command line; None when the flags were never parsed (library use) and
    this one was not set on its own."""
    if flags.FLAGS.is_parsed() or flags.FLAGS[holder.name].present:
        return holder.value
    return None


def run(task_cls):
    """Runs the app whose task class is `task_cls` (call from __main__)."""
    app.run(lambda argv: _main(task_cls, argv), flags_parser=_parse_flags)


def _main(task_cls, argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = load_config(_CONFIG.value, flags.FLAGS["config"].config_filename)
        result = execute(task_cls, config, _WORKDIR.value, _MODE.value, _INPUT.value)
    except UserError as e:
        _fail(str(e))
    if result is not None:  # the headline; per-class figures are in metrics.json
        headline = {k: v for k, v in result.items() if not k.startswith("test_class_")}
        print(json.dumps(headline, indent=2, sort_keys=True))


def load_config(config, path=None):
    """Checks a config loaded by config_flags; raises UserError on a bad one."""
    if config is None:
        raise UserError("--config is required, e.g. --config=configs/classification.py")
    if type(config).__name__ == "_ErrorConfig":
        # config_flags defers a bad --config until the value is used.
        if path and not os.path.exists(path.split(":")[0]):
            raise UserError(f"--config={path}: no such file")
        try:
            config.app  # noqa: B018 - raises the deferred error
        except Exception as e:  # noqa: BLE001 - whatever the config file raised
            raise UserError(f"--config={path}: {str(e).splitlines()[0]}") from None
    return config


def execute(task_cls, config, workdir, mode="train", input_path=None):
    """Runs one mode; returns metrics (train, eval) or None. Raises UserError."""
    config = load_config(config)
    if not workdir:
        raise UserError("--workdir is required (the run's folder)")
    modes = MODES + tuple(m for m in task_cls.extra_modes if m not in MODES)
    if mode not in modes:
        raise UserError(f"--mode={mode}: expected one of {', '.join(modes)}")
    config_lib.check(config, {**config_lib.COMMON_RULES, **optim.RULES, **task_cls.rules})
    config_lib.check_workdir_owner(config, workdir, task_cls.workdir_fields)
    # A run killed while exporting may have left the previous export aside.
    export_lib.recover(os.path.join(workdir, "export"))
    export_lib.recover(os.path.join(workdir, "export_tflite"))
    if config.get("deterministic", True) and not config.xla:
        # TensorFlow has no deterministic XLA kernel for some gradients (max
        # pooling), so op determinism is only asked for without XLA.
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if config.strategy in ("multi_worker", "tpu") and mode in ("train", "train_fast", "eval", "export"):
        # Collective ops must be configured before the task's first TensorFlow
        # op (data synthesis, say); the Trainer later gets this same strategy.
        from apps.core import strategy as strategy_lib

        strategy_lib.make_strategy(config.strategy, config.tpu)
    task = task_cls(config)
    if mode in task_cls.extra_modes:
        return task.run_mode(mode, workdir, input_path)
    if mode == "predict":
        return _predict(task, workdir, input_path)

    from apps.core.trainer import Trainer

    trainer = Trainer(task, workdir)
    if mode == "train":
        metrics = trainer.train()
        paths = trainer.paths
        if trainer.chief:
            print(f"TensorBoard: tensorboard --logdir {os.path.dirname(paths['tb_train'])}")
            print(f"Metrics:     {paths['metrics']}")
            print(f"SavedModel:  {paths['export']}")
        return metrics
    if mode == "eval":
        return trainer.evaluate()
    trainer.restore(required=True)
    path = trainer.export()
    print(f"SavedModel: {path}")
    return None


def _predict(task, workdir, input_path):
    import tensorflow as tf

    if not input_path:
        raise UserError("--mode=predict needs --input=PATH (a file or a folder)")
    if not os.path.exists(input_path):
        raise UserError(f"--input={input_path}: no such file or folder")
    export = os.path.join(workdir, "export")
    if not os.path.exists(os.path.join(export, "saved_model.pb")):
        raise UserError(f"no SavedModel in {export}; train or --mode=export first")
    try:
        serving = tf.saved_model.load(export).signatures["serving_default"]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{export}: not a loadable SavedModel ({reason}); "
                        "re-export it with --mode=export") from None
    task.predict(serving, input_path)
    logging.info("predicted %s", input_path)
    return None
