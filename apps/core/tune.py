"""--mode=tune: random search on the right scales, coarse to fine, with Optuna.

The notes' way of tuning: sample hyperparameters at random (not on a grid),
each on its own scale (a learning rate log-uniformly, a beta through 1 - beta
on a log scale), then search again, finer, around the best region. Every
trial is a normal training run in WORKDIR/trials/NNNN (so it resumes after a
kill and exports as usual), scored by a validation metric (val_<metric> of its
metrics.json: the test split stays untouched for the report).

The search space is config (configs/<app>.py sets a default):

    config.tune.space = "optimizer.learning_rate = log_uniform(1e-4, 1); "
                        "optimizer.beta_1 = one_minus_log(0.8, 0.999); "
                        "train.batch_size = choice(16, 32, 64); model.width = uniform(0.5, 2)"

Distributions: log_uniform(low, high), uniform(low, high), int(low, high)
(inclusive), choice(a, b, ...), one_minus_log(low, high) (1 - value is
log-uniform in [1 - high, 1 - low]: as many trials in [0.9, 0.99] as in
[0.99, 0.999]).

Optuna keeps the study (its samplers, pruners and storage are used rather
than written here): by default a SQLite file WORKDIR/tune.db, or any SQL
database URL in config.tune.storage, so several `--mode=tune` processes, on
one machine or several, share one study. Each trial's parameters are drawn
from (config.seed, trial number) only. The first config.tune.coarse_share of
the trials sample the declared space; the rest sample a box around the best
quarter of the finished trials (each numeric field's range on its own scale,
widened by a tenth of the declared range; choices stay as declared). Trials
that fall behind the median of earlier ones at the same epoch, from the middle
epoch on, are pruned (config.tune.pruner: median | halving | none). Each trial
runs config.tune.mode ("train", or an app's own training mode such as style
transfer's train_fast).

A trial whose process died (killed, machine restarted) is found by its lock
file (WORKDIR/trials/NNNN.lock, held while it runs) and finished by the next
tune process on that machine: the same command continues the same study and
never repeats a finished trial. At the end: a ranked table, WORKDIR/tune.json,
and the best trial's SavedModel copied to WORKDIR/export.
"""

import ast
import contextlib
import copy
import dataclasses
import fcntl
import json
import logging as std_logging
import math
import os
import re
import shutil
import socket
import subprocess
import sys

from apps.core import config as config_lib
from apps.core import export as export_lib
from apps.core import workdir as workdir_lib
from apps.core.errors import UserError

KINDS = ("log_uniform", "uniform", "int", "choice", "one_minus_log")
_ENTRY = re.compile(r"^([A-Za-z_][\w.]*)\s*=\s*([a-z_]+)\s*\((.*)\)$")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One field of the search space: `field` ~ `kind(*args)`."""

    field: str
    kind: str
    args: tuple

    @property
    def param(self):
        """The Optuna parameter's name (1-<field> for one_minus_log)."""
        return f"1-{self.field}" if self.kind == "one_minus_log" else self.field

    def suggest(self, trial, low=None, high=None):
        """Samples the parameter in `trial` (in [low, high] if given)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.param, self.args)
        lo, hi = self.bounds
        lo, hi = (lo if low is None else low), (hi if high is None else high)
        if self.kind == "int":
            return trial.suggest_int(self.param, int(lo), int(hi))
        return trial.suggest_float(self.param, lo, hi, log=self.kind != "uniform")

    @property
    def bounds(self):
        """The declared range of the Optuna parameter."""
        low, high = self.args
        if self.kind == "one_minus_log":
            return 1.0 - high, 1.0 - low
        return low, high

    def value(self, sampled):
        """The config value of a sampled parameter."""
        return 1.0 - sampled if self.kind == "one_minus_log" else sampled

    def scale(self, x):
        """Where x lies on the scale the dimension is sampled on."""
        return math.log(x) if self.kind in ("log_uniform", "one_minus_log") else x

    def unscale(self, x):
        return math.exp(x) if self.kind in ("log_uniform", "one_minus_log") else x


def parse_space(text, config):
    """The Dimensions of config.tune.space; UserError naming a bad entry."""
    dimensions = []
    for entry in filter(None, (e.strip() for e in text.replace("\n", ";").split(";"))):
        where = f"config.tune.space entry {entry!r}"
        match = _ENTRY.match(entry)
        if not match:
            raise UserError(f"{where}: expected 'field = kind(args)' with kind one of "
                            f"{', '.join(KINDS)}")
        field, kind, arg_text = match.groups()
        if kind not in KINDS:
            raise UserError(f"{where}: unknown distribution {kind!r}; expected one of "
                            f"{', '.join(KINDS)}")
        try:
            args = ast.literal_eval(f"({arg_text},)") if arg_text.strip() else ()
        except (ValueError, SyntaxError):
            raise UserError(f"{where}: the arguments are not Python literals") from None
        try:
            current = config_lib.lookup(config, field)
        except (KeyError, AttributeError, TypeError):
            raise UserError(f"{where}: config.{field} is not a field of this app's "
                            "config (--mode=config lists them)") from None
        if isinstance(current, dict) or hasattr(current, "items"):
            raise UserError(f"{where}: config.{field} is a section, not a field")
        _check_args(where, kind, args)
        if kind == "int" and isinstance(current, float):
            pass  # an int is a valid float field value
        elif kind not in ("int", "choice") and isinstance(current, int) \
                and not isinstance(current, bool):
            raise UserError(f"{where}: config.{field} holds an integer ({current}); "
                            "use int(low, high) or choice(...)")
        if any(d.field == field for d in dimensions):
            raise UserError(f"{where}: config.{field} is in the space twice")
        dimensions.append(Dimension(field, kind, tuple(args)))
    if not dimensions:
        raise UserError("config.tune.space is empty; set it, e.g. "
                        "--config.tune.space='optimizer.learning_rate = log_uniform(1e-4, 1)'")
    return dimensions


def _check_args(where, kind, args):
    if kind == "choice":
        if not args or not all(isinstance(a, (bool, int, float, str)) for a in args):
            raise UserError(f"{where}: choice needs one or more numbers, strings or booleans")
        return
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                 for a in args):
        raise UserError(f"{where}: {kind} takes two numbers, low and high")
    low, high = args
    if not low < high:
        raise UserError(f"{where}: low must be below high")
    if kind == "int" and not all(isinstance(a, int) for a in args):
        raise UserError(f"{where}: int takes two integers")
    if kind == "log_uniform" and low <= 0:
        raise UserError(f"{where}: log_uniform needs 0 < low")
    if kind == "one_minus_log" and not 0 <= low < high < 1:
        raise UserError(f"{where}: one_minus_log needs 0 <= low < high < 1 (a beta-like "
                        "field; 1 - value is sampled on a log scale)")


def trial_config(config, dimensions, params):
    """A copy of `config` with the sampled parameters set."""
    trial = copy.deepcopy(config)
    for dim in dimensions:
        section, _, name = dim.field.rpartition(".")
        holder = config_lib.lookup(trial, section) if section else trial
        value = dim.value(params[dim.param])
        try:
            setattr(holder, name, value)
        except (TypeError, ValueError) as e:
            raise UserError(f"config.tune.space: config.{dim.field} cannot hold {value!r} "
                            f"({e})") from None
    return trial


def fine_box(dimensions, finished, direction):
    """{param: (low, high)}: the box around the best quarter of `finished`
    (Optuna FrozenTrials), on each dimension's own scale, widened by a tenth of
    the declared range and kept inside it. Choices are not narrowed."""
    ranked = sorted(finished, key=lambda t: t.value, reverse=direction == "maximize")
    best = ranked[:max(2, math.ceil(len(ranked) / 4))]
    box = {}
    for dim in dimensions:
        if dim.kind == "choice":
            continue
        lo, hi = (dim.scale(b) for b in dim.bounds)
        values = [dim.scale(t.params[dim.param]) for t in best if dim.param in t.params]
        if not values:
            continue
        margin = (hi - lo) / 10
        low, high = max(lo, min(values) - margin), min(hi, max(values) + margin)
        low, high = dim.unscale(low), dim.unscale(high)
        if dim.kind == "int":
            low, high = math.floor(low), math.ceil(high)
        box[dim.param] = (max(low, dim.bounds[0]), min(high, dim.bounds[1]))
    return box


class _NotRetracing(std_logging.Filter):
    """Every trial builds its own model, hence its own tf.functions, in this
    process; TensorFlow's warning that they 'triggered retracing' is not news."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


class _Lock:
    """An exclusive lock on a file, held while a trial runs (released by the
    kernel when its process dies, however it dies)."""

    def __init__(self, path):
        self.path = path
        self.file = None

    def acquire(self):
        self.file = open(self.path, "a")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            self.file = None
            return False
        return True

    def release(self):
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def tune(task, run):
    """--mode=tune (see the module docstring); returns the best trial's metrics."""
    import optuna

    config = task.config
    workdir = run.workdir
    settings = config.tune
    dimensions = parse_space(settings.space, config)
    metric = settings.metric or task.headline_metrics[0]
    if metric not in task.headline_metrics:
        raise UserError(f"config.tune.metric = {metric!r}: expected one of this app's headline "
                        f"metrics ({', '.join(task.headline_metrics)})")
    if settings.mode != "train" and settings.mode not in task.extra_modes:
        raise UserError(f"config.tune.mode = {settings.mode!r}: expected 'train' or one of "
                        f"this app's own training modes ({', '.join(task.extra_modes)})")
    config_lib.check_workdir_owner(config, workdir, ("tune.space", "tune.metric",
                                                     "tune.direction", "seed"))
    os.makedirs(os.path.join(workdir, "trials"), exist_ok=True)
    config_lib.save(config, workdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    std_logging.getLogger("tensorflow").addFilter(_NotRetracing())
    study = _open_study(settings, config.app, workdir, config.train.epochs)
    workers = _start_workers(task, run)
    task_cls = type(task)
    n_coarse = math.ceil(settings.trials * settings.coarse_share)
    while True:
        claimed = _claim_orphan(study, workdir) or _new_trial(study, workdir, settings.trials)
        if claimed is None:
            break
        trial, lock = claimed
        try:
            _run_trial(study, trial, task_cls, config, dimensions, metric, workdir, n_coarse)
        finally:
            lock.release()
    for worker in workers:
        worker.wait()
    return _report(study, workdir, metric, dimensions)


def _open_study(settings, app, workdir, epochs):
    """The study (made by the first process to come). Processes of this machine
    take turns (a lock file); those of several machines sharing a database may
    race to make its tables, so a lost race is tried again."""
    import optuna
    import sqlalchemy

    storage = settings.storage or f"sqlite:///{os.path.abspath(workdir)}/tune.db"
    with _study_lock(workdir):
        for attempt in range(3):
            try:
                return optuna.create_study(
                    study_name=settings.study or app, storage=storage,
                    direction=settings.direction, pruner=_pruner(settings, epochs, settings.trials),
                    load_if_exists=True)
            except (sqlalchemy.exc.IntegrityError, optuna.exceptions.DuplicatedStudyError):
                if attempt == 2:
                    raise
            except (sqlalchemy.exc.ArgumentError, ModuleNotFoundError, ValueError) as e:
                raise UserError(f"config.tune.storage = {settings.storage!r}: not a database "
                                f"Optuna can open ({str(e).splitlines()[0]})") from None
    raise AssertionError("unreachable")


def _pruner(settings, epochs, trials):
    import optuna

    if settings.pruner == "median":
        # Once a quarter of the trials (at least 3) have finished, so that the
        # median is not that of a lucky first pair, and from the middle epoch
        # on: the first epochs' validation figures (warm-up, batch-norm
        # statistics still settling) say little about where a trial ends.
        return optuna.pruners.MedianPruner(n_startup_trials=max(3, math.ceil(trials / 4)),
                                           n_warmup_steps=max(1, epochs // 2))
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def _start_workers(task, run):
    """config.tune.workers - 1 more tune processes on this machine (the same
    command, logging to WORKDIR/worker-N.log); they share the study. 0 means
    one process per 4 cores: TensorFlow already spreads one trial's steps
    over several cores, so more processes than that only compete."""
    workers = task.config.tune.workers or max(1, (os.cpu_count() or 1) // 4)
    if workers <= 1:
        return []
    module = type(task).__module__.rpartition(".")[0]
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != f"{module}.__main__":
        raise UserError("config.tune.workers > 1 starts more processes of the command line "
                        f"(python -m {module} ... --mode=tune); run it from there")
    command = [sys.executable, "-m", module, *sys.argv[1:], "--config.tune.workers=1"]
    started = []
    for i in range(1, workers):
        log = open(os.path.join(run.workdir, f"worker-{i}.log"), "w")
        started.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    print(f"started {workers - 1} more tune process{'es' if workers > 2 else ''} "
          f"(logs: {run.workdir}/worker-N.log)")
    return started


@contextlib.contextmanager
def _study_lock(workdir):
    """Holds WORKDIR/tune.lock: this machine's tune processes take turns to
    open the study, claim an orphaned trial or ask for a new one."""
    with open(os.path.join(workdir, "tune.lock"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def _trial_dir(workdir, number):
    return os.path.join(workdir, "trials", f"{number:04d}")


def _claim_orphan(study, workdir):
    """(trial, lock) of a running trial of this machine whose process died, else None.
    Under the same lock file as _new_trial, which marks a new trial as this
    host's and takes its lock before letting go: a trial just asked for is
    never taken for an orphan."""
    import optuna

    with _study_lock(workdir):
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for frozen in running:
            if frozen.user_attrs.get("host") != socket.gethostname():
                continue
            lock = _Lock(_trial_dir(workdir, frozen.number) + ".lock")
            if lock.acquire():
                print(f"trial {frozen.number}: continuing it (its process stopped)")
                # Optuna's Trial of a stored trial needs its storage id, which
                # FrozenTrial keeps as _trial_id (there is no public accessor).
                trial = optuna.trial.Trial(study, frozen._trial_id)
                trial.set_user_attr("pid", os.getpid())
                return trial, lock
    return None


def _new_trial(study, workdir, budget):
    """(trial, lock) of a new trial, or None when the study has `budget` trials.
    Counting and asking happen under a lock, so processes of one machine never
    go over the budget; a process of another machine that does gets its surplus
    trial marked failed ("over the budget")."""
    import optuna

    def counted(before=None):
        return sum(1 for t in study.get_trials(deepcopy=False)
                   if not t.user_attrs.get("over_budget")
                   and (before is None or t.number < before))

    with _study_lock(workdir):
        if counted() >= budget:
            return None
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        lock = _Lock(_trial_dir(workdir, trial.number) + ".lock")
        lock.acquire()  # a new number: nobody else holds it
    if counted(before=trial.number) >= budget:  # another machine asked first
        trial.set_user_attr("over_budget", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        lock.release()
        return None
    return trial, lock


def _run_trial(study, trial, task_cls, config, dimensions, metric, workdir, n_coarse):
    """Trains one trial (resuming its workdir) and tells the study its outcome."""
    import optuna

    from apps.core import main

    params = _sample(study, trial, config, dimensions, n_coarse)
    values = {dim.field: dim.value(params[dim.param]) for dim in dimensions}
    print(f"trial {trial.number}: " + ", ".join(f"{k}={_short(v)}" for k, v in values.items()),
          flush=True)

    def report(epoch, validation):
        trial.report(float(validation[metric]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()

    folder = _trial_dir(workdir, trial.number)
    try:
        metrics = main.execute(task_cls, trial_config(config, dimensions, params), folder,
                               config.tune.mode, on_validation=report)
    except optuna.TrialPruned:
        print(f"trial {trial.number}: pruned (validation {metric} behind the median)")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except UserError as e:  # e.g. a learning rate that made the loss diverge
        print(f"trial {trial.number}: failed: {e}")
        trial.set_user_attr("error", str(e))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    finally:
        _free_memory()
    value = metrics[f"val_{metric}"]
    print(f"trial {trial.number}: val_{metric} {value:.4f}", flush=True)
    study.tell(trial, value)


def _sample(study, trial, config, dimensions, n_coarse):
    """The trial's parameters: drawn from (seed, trial number) only; in the
    declared space for the coarse round, in the box of fine_box after it. A
    resumed trial keeps the parameters it was given."""
    import optuna

    if trial.params:
        return dict(trial.params)
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    fine = trial.number >= n_coarse and len(finished) >= 2
    box = fine_box(dimensions, finished, study.direction.name.lower()) if fine else {}
    trial.set_user_attr("round", "fine" if fine else "coarse")
    study.sampler = optuna.samplers.RandomSampler(seed=config.seed * 1_000_003 + trial.number)
    return {dim.param: dim.suggest(trial, *box.get(dim.param, (None, None)))
            for dim in dimensions}


def _free_memory():
    """Drops the finished trial's models and graphs before the next one."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _report(study, workdir, metric, dimensions):
    """Prints the ranked table, writes tune.json and copies the best export."""
    import optuna

    state = optuna.trial.TrialState
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("over_budget")]
    complete = [t for t in trials if t.state == state.COMPLETE]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: t.value, reverse=maximize)
    others = sorted((t for t in trials if t.state != state.COMPLETE), key=lambda t: t.number)
    rows = []
    for rank, t in enumerate(complete + others, 1):
        rows.append({
            "rank": rank if t.state == state.COMPLETE else None,
            "trial": t.number,
            "state": t.state.name.lower(),
            "round": t.user_attrs.get("round"),
            f"val_{metric}": t.value,
            "last_reported": (t.intermediate_values[max(t.intermediate_values)]
                              if t.intermediate_values else None),
            "params": {d.field: d.value(t.params[d.param]) for d in dimensions
                       if d.param in t.params},
            "workdir": _trial_dir(workdir, t.number),
            "error": t.user_attrs.get("error"),
        })
    best = rows[0] if complete else None
    summary = {"metric": f"val_{metric}", "direction": study.direction.name.lower(),
               "trials": rows, "best": best}
    if best is not None:
        source = os.path.join(best["workdir"], "export")
        if os.path.exists(os.path.join(source, "saved_model.pb")):
            target = os.path.join(workdir, "export")
            with export_lib.staged_folder(target) as staged:
                shutil.copytree(source, staged, dirs_exist_ok=True)
            summary["export"] = target
    path = os.path.join(workdir, "tune.json")
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(path + ".tmp", path)
    _print_table(rows, metric)
    print(f"Results:    {path}")
    if best is not None:
        print(f"Best:       trial {best['trial']} ({best['workdir']})")
        if "export" in summary:
            print(f"SavedModel: {summary['export']}")
    print(f"TensorBoard (HParams): tensorboard --logdir {os.path.join(workdir, 'trials')}")
    if best is None:
        raise UserError(f"no trial of {workdir} finished (see the lines above)")
    return workdir_lib.read_metrics(best["workdir"])


def _print_table(rows, metric):
    fields = sorted({f for r in rows for f in r["params"]})
    header = ["rank", "trial", "state", "round", f"val_{metric}", *fields]
    lines = [header]
    for r in rows:
        value = r[f"val_{metric}"] if r[f"val_{metric}"] is not None else r["last_reported"]
        lines.append([str(r["rank"] or "-"), str(r["trial"]), r["state"], r["round"] or "-",
                      "-" if value is None else f"{value:.4f}",
                      *(_short(r["params"].get(f, "-")) for f in fields)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
