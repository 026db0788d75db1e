"""The standard modes, run by the core for every app: train, eval, export, predict.

Each takes the app's `Task` and the command's `Run` (apps.core.task). They
own what every app needs the same way: the checks of the workdir, the
SavedModel and --input (before anything slow is loaded), the final prints
and metrics.json, written once by the trainer in one naming scheme:
`test_<metric>` for the test split, the model's own facts (Task.unprefixed_metrics)
and the run's (examples_per_sec, train_seconds, steps, Task.run_metrics) as they are.
"""

import json
import os
import shutil

from absl import logging

from apps.core import diagnosis
from apps.core import workdir as workdir_lib
from apps.core.errors import UserError

#: the file that marks a folder as predict's own, so a later run may replace it
PREDICTIONS_MARK = ".dlsuite-predictions"


def train(task, run, trainer=None):
    """Trains (resuming), tests, exports and writes metrics.json; prints the summary."""
    trainer = trainer or task.make_trainer(run.workdir)
    trainer.on_validation = run.on_validation
    metrics = trainer.train()
    if trainer.chief:
        print_summary(metrics, trainer.outputs(), task)
    return metrics


def evaluate(task, run):
    """The latest checkpoint on the test split."""
    metrics = task.make_trainer(run.workdir).evaluate()
    line = headline_line("test", metrics, task.headline_metrics, prefix="test_",
                         keep=task.unprefixed_metrics)
    if line:
        print(line)
    return metrics


def export(task, run):
    """Writes the SavedModel again from the latest checkpoint."""
    print_outputs(task.make_trainer(run.workdir).export(restore=True))


def predict(task, run):
    """Runs the exported model on every input at --input.

    The inputs are listed (and the first checked) before the SavedModel is
    loaded, so a mistake is reported at once. In a folder an unreadable input
    is skipped, named in a warning and counted; a single unreadable input, or
    a folder of them, is an error. Each run's outputs replace the folder of
    the last one (never mixed), with predictions.json holding every record.
    """
    items = predict_items(task, run)
    saved_model_path(run.workdir, task.export_made_by)
    folder = run.output or os.path.join(run.workdir, "predictions")
    _check_output_folder(folder)
    names = (workdir_lib.output_names(items, run.input) if task.input_is_files
             else dict.fromkeys(items))
    saved_model, records, skipped = None, [], []
    for item in items:
        try:
            value = task.read_item(item)
        except UserError as e:
            if len(items) == 1:
                raise _about_input(e) if task.input_is_files else e from None
            logging.warning("skipped %s", e)
            skipped.append(str(e))
            continue
        if saved_model is None:  # loaded once an input has proved readable
            saved_model = task.load_export(run.workdir)
            _fresh_output_folder(folder)
        output = os.path.join(folder, names[item]) if names[item] else None
        if output:
            os.makedirs(os.path.dirname(output), exist_ok=True)
        record = task.predict_item(saved_model, item, value, output)
        if record is not None:
            records.append(record)
    if skipped:
        print(f"skipped {len(skipped)} of {len(items)} {task.input_unit} (not readable; see "
              "the warnings above)")
        if len(skipped) == len(items):
            raise UserError(f"--input={run.input}: none of its {len(items)} {task.input_unit} "
                            f"is readable (first: {skipped[0]})")
    if records:
        path = os.path.join(folder, "predictions.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(records, f, indent=2, ensure_ascii=False)
        os.replace(path + ".tmp", path)
    if os.listdir(folder) != [PREDICTIONS_MARK]:
        print(f"Predictions: {folder}")


def predict_items(task, run):
    """The task's inputs at --input, after the checks every app shares."""
    if not run.input:
        raise UserError(f"--mode={run.mode} needs --input=PATH ({task.input_kind})")
    if task.input_is_files and not os.path.exists(run.input):
        raise UserError(f"--input={run.input}: no such file or folder")
    try:
        items = task.predict_items(run.input)
    except UserError as e:
        raise _about_input(e) from None
    if not items:
        raise UserError(f"--input={run.input}: nothing to predict on ({task.input_kind})")
    return items


def _about_input(error):
    """`error` (a UserError about a file of --input) as one about --input."""
    message = str(error)
    return UserError(message if message.startswith("--input=") else f"--input={message}")


def _check_output_folder(folder):
    """Refuses a file, or a non-empty folder that no earlier predict wrote."""
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise UserError(f"--output={folder}: a file; expected a folder for the predictions")
    if os.listdir(folder) and not os.path.exists(os.path.join(folder, PREDICTIONS_MARK)):
        raise UserError(f"--output={folder}: a folder with other files in it; choose an "
                        "empty or new folder (predict replaces its own folder's contents)")


def _fresh_output_folder(folder):
    """An empty `folder` (checked by _check_output_folder) marked as predict's own."""
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    open(os.path.join(folder, PREDICTIONS_MARK), "w").close()


def saved_model_path(workdir, made_by="train"):
    """WORKDIR/export, or a UserError when no SavedModel is there (naming the
    mode that writes one, `made_by`)."""
    export = workdir_lib.paths(workdir)["export"]
    if not os.path.exists(os.path.join(export, "saved_model.pb")):
        first = "train" if made_by == "train" else f"--mode={made_by}"
        raise UserError(f"no SavedModel in {export}; {first} or --mode=export first")
    return export


def load_saved_model(workdir):
    """The workdir's exported SavedModel (tf.saved_model.load), or a UserError."""
    import tensorflow as tf

    export = saved_model_path(workdir)
    try:
        return tf.saved_model.load(export)
    except (OSError, ValueError, KeyError, RuntimeError, tf.errors.OpError) as e:
        # RuntimeError: an op the SavedModel needs is not registered here.
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{export}: not a loadable SavedModel ({reason}); "
                        "re-export it with --mode=export") from None


def headline_line(split, metrics, names, prefix="", keep=()):
    """'split: a 0.9120, b 0.0310' of the headline metrics `names` (the first
    four scalars when none is there), looked up as prefix + name unless the name
    is in `keep` (a task's unprefixed_metrics); "" when there is none."""
    def key(name):
        return name if name in keep else prefix + name

    chosen = [n for n in names if key(n) in metrics] or [
        k[len(prefix):] for k, v in metrics.items()
        if k.startswith(prefix) and isinstance(v, float)][:4]
    if not chosen:
        return ""
    return f"{split}: " + ", ".join(_figure(n, metrics[key(n)]) for n in chosen)


def _figure(name, value):
    return f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"


def print_summary(metrics, outputs, task):
    """The end of a training run: the test headline, the diagnosis, the speed and
    where things are."""
    line = headline_line("test", metrics, task.headline_metrics, prefix="test_",
                         keep=task.unprefixed_metrics)
    if line:
        print(line)
    for line in diagnosis.lines(metrics):
        print(line)
    speed = metrics.get("examples_per_sec")
    if metrics.get("steps") is not None:
        print(f"trained {metrics['steps']} steps in {metrics.get('train_seconds') or 0:.1f} s"
              + (f" ({speed:.0f} examples/s)" if speed else ""))
    print_outputs(outputs)


def print_outputs(outputs):
    """'Label:  path' lines, the paths aligned."""
    width = max(len(label) for label in outputs) + 2 if outputs else 0
    for label, path in outputs.items():
        print(f"{label + ':':<{width}}{path}")
