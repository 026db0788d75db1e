"""The absl entrypoint every app shares.

    python -m apps.<app> --config=configs/<app>.py[:variant] --workdir=DIR \\
        [--mode=train|eval|predict|export|tune|config] [--input=PATH] [--output=DIR] \\
        [--config.a.b=value ...] [-v 1]

An app's __main__.py is two lines: `from apps.core.main import run` and
`run(MyTask)`. The core runs the standard modes (apps.core.modes) and the
app's own (Task.extra_modes); `--mode=config` prints the resolved config, every
field with its value, which `--config.a.b=value` may override. A user's
mistake (unknown or mistyped config field, value out of range, a flag the
mode does not read, missing file) ends the run with one line on stderr and
exit status 2.
"""

from apps.core import console

console.start()  # before anything imports TensorFlow

import ast  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from apps.core import config as config_lib  # noqa: E402
from apps.core import export as export_lib  # noqa: E402
from apps.core import modes as modes_lib  # noqa: E402
from apps.core import tune as tune_lib  # noqa: E402
from apps.core.errors import UserError  # noqa: E402
from apps.core.task import Run  # noqa: E402

MODES = {"train": modes_lib.train, "eval": modes_lib.evaluate,
         "predict": modes_lib.predict, "export": modes_lib.export, "tune": tune_lib.tune}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to configs/<app>.py (optionally :variant); override any field "
    "with --config.section.field=value (--mode=config lists them all). -v 1 shows "
    "TensorFlow's own log lines.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, TensorBoard, export.")
_MODE = flags.DEFINE_string("mode", "train", "train | eval | predict | export | tune | config "
                            "(print the resolved config and exit), or an app's own mode (e.g. "
                            "face_recognition's enroll).")
_INPUT = flags.DEFINE_string("input", None, "--mode=predict (and the app's own modes that "
                             "read inputs): an input file or folder.")
_OUTPUT = flags.DEFINE_string("output", None, "--mode=predict: the folder for the "
                              "predictions (default WORKDIR/predictions).")


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    """absl's parser, with a user's mistakes reported on one line."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        text = str(e)
        if "Error whilst parsing config file" in text:
            # config_flags puts the config file's own error, the last line of
            # the traceback it quotes, after a line that says nothing.
            last = [line for line in text.splitlines() if line.strip()][-1].strip()
            flag = re.match(r"flag (--\S+?): Error", text)
            _fail(f"{flag.group(1) if flag else '--config'}: "
                  f"{last.split(': ', 1)[-1] if 'Error: ' in last else last}")
        _fail(text.splitlines()[0])
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


def run(task_cls):
    """Runs the app whose task class is `task_cls` (call from __main__)."""
    for name, (used_by, help_text) in task_cls.flags.items():
        if name not in flags.FLAGS:
            flags.DEFINE_string(name, None, f"{help_text} (--mode={'/'.join(used_by)})")
    # --help lists the main module's key flags: these, rather than one line.
    main_module = sys.argv[0]
    for name in ("config", "workdir", "mode", "input", "output", *task_cls.flags):
        flags.FLAGS.register_key_flag_for_module(main_module, flags.FLAGS[name])
    try:
        app.run(lambda argv: _main(task_cls, argv), flags_parser=_parse_flags)
    except SystemExit as e:
        code = e.code
    except BaseException:  # a bug: its traceback, as Python would print it
        traceback.print_exc()
        code = 1
    _exit_now(code)


def _exit_now(code):
    """Ends the process without Python's finalization. Python cannot always
    finish after an error while tf.data's threads are still reading values
    through a Python function (apps.core.columns): finalization waits on them,
    and they on it. Everything written is flushed first (the trainer flushes
    its TensorBoard writers; checkpoints and exports are complete on disk)."""
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _main(task_cls, argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    console.configure_logging()
    options = {name: flags.FLAGS[name].value for name in task_cls.flags
               if flags.FLAGS[name].present}
    try:
        config = load_config(_CONFIG.value, flags.FLAGS["config"].config_filename)
        if _MODE.value == "config":
            print(config_lib.to_json(config))
            return
        execute(task_cls, config, _WORKDIR.value, _MODE.value, _INPUT.value,
                output=_OUTPUT.value, **options)
    except UserError as e:
        _fail(str(e))


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


def app_name(task_cls):
    """The app a task class belongs to: apps.<app>.task -> <app>."""
    parts = task_cls.__module__.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "apps" else None


def execute(task_cls, config, workdir, mode="train", input_path=None, output=None,
            on_validation=None, **options):
    """Runs one mode; returns metrics (train, eval, some extra modes) or None.

    `options` are the app's own flags (Task.flags) that were given. Raises UserError.
    """
    config = load_config(config)
    if not workdir:
        raise UserError("--workdir is required (the run's folder)")
    modes = {**MODES, **task_cls.extra_modes}
    if mode not in modes:
        raise UserError(f"--mode={mode}: expected one of {', '.join(modes)}, or config")
    _check_flags(task_cls, mode, input_path, output, options)
    run_ = Run(workdir=workdir, mode=mode, input=input_path, output=output, options=options,
               on_validation=on_validation)
    expected = app_name(task_cls)
    if expected and config.get("app") != expected:
        raise UserError(f"--config: a config of the {config.get('app')!r} app, not "
                        f"{expected!r}; use configs/{expected}.py")
    config = task_cls.apply_options(config, run_)
    # The fields the strategy reads are checked first: it must be made before
    # TensorFlow's first op, which an app's own checks may run.
    config_lib.check(config, config_lib.COMMON_RULES)
    if config.deterministic and not config_lib.xla_enabled(config):
        # TensorFlow has no deterministic XLA kernel for some gradients (max
        # pooling), so op determinism is only asked for without XLA.
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if config.strategy in ("multi_worker", "tpu") and mode != "predict":
        # Collective ops are configured here; the Trainer later gets this same strategy.
        from apps.core import strategy as strategy_lib

        strategy_lib.make_strategy(config.strategy, config.tpu)
    config_lib.check_app(config)
    config_lib.check_workdir_owner(config, workdir, task_cls.workdir_fields)
    # A run killed while exporting may have left the previous export aside.
    export_lib.recover(os.path.join(workdir, "export"))
    export_lib.recover(os.path.join(workdir, "export_tflite"))
    task = task_cls(config)
    task.check_run(run_)
    return modes[mode](task, run_)


def _check_flags(task_cls, mode, input_path, output, options):
    """A flag the mode will not read is a mistake, not something to ignore."""
    reads_input = mode == "predict" or mode in task_cls.input_modes
    if input_path is not None and not reads_input:
        raise UserError(f"--input={input_path} is not read by --mode={mode} (it is for "
                        "--mode=predict); for training data set config.data")
    if output is not None and mode != "predict":
        raise UserError(f"--output={output} is for --mode=predict, not --mode={mode}")
    for name, value in options.items():
        used_by = task_cls.flags[name][0]
        if value is not None and mode not in used_by:
            raise UserError(f"--{name}={value} is for --mode={'/'.join(used_by)}, not "
                            f"--mode={mode}")
