"""Config checks shared by every app, and the resolved config on disk.

Each app's `configs/<app>.py` builds an `ml_collections.ConfigDict`; the
entrypoint locks it so a misspelt override fails at parse time. Values are
checked here against small declarative rules, and a bad value is a `UserError`
naming the field:

    check(config, {
        "train.batch_size": positive_int,
        "data.split": fractions_summing_to_one,
        "model.name": one_of("lenet5", "resnet"),
    })
"""

import json
import math
import os

import ml_collections

from apps.core.errors import UserError


class Rule:
    """A predicate on a config value with the words for what it expects."""

    def __init__(self, test, expected):
        self.test = test
        self.expected = expected

    def __call__(self, value):
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


positive_int = Rule(lambda v: _is_int(v) and v > 0, "an integer > 0")
non_negative_int = Rule(lambda v: _is_int(v) and v >= 0, "an integer >= 0")
positive_float = Rule(lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a number > 0")
non_negative_float = Rule(lambda v: _is_number(v) and math.isfinite(v) and v >= 0, "a number >= 0")
fraction = Rule(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
positive_fraction = Rule(lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")
probability = Rule(lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
boolean = Rule(lambda v: isinstance(v, bool), "true or false")
fractions_summing_to_one = Rule(
    lambda v: len(v) == 3 and all(_is_number(x) and x > 0 for x in v) and abs(sum(v) - 1) < 1e-6,
    "three fractions > 0 (train, val, test) that sum to 1",
)


#: config.data.cache: none | memory | a folder (apps.core.data.cached)
data_cache = Rule(lambda v: isinstance(v, str) and v.strip() == v and v != "",
                  "'none', 'memory' or a folder to cache the decoded data in")


def one_of(*choices):
    return Rule(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def int_in(low, high):
    return Rule(lambda v: _is_int(v) and low <= v <= high, f"an integer in [{low}, {high}]")


def lookup(config, dotted):
    """Returns the value at a dotted path such as 'train.batch_size'."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def _difference(then, now):
    """What differs between a workdir's value and this run's, briefly."""
    if isinstance(then, dict) and isinstance(now, dict):
        keys = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
        return ", ".join(f"{k}: {then.get(k)!r} there, {now.get(k)!r} here" for k in keys[:3])
    return f"{then!r} there, {now!r} here"


def _lookup_or_none(tree, dotted):
    try:
        return lookup(tree, dotted)
    except (KeyError, TypeError):
        return None


def check(config, rules):
    """Raises UserError for the first field whose value breaks its rule."""
    for field, rule in rules.items():
        value = lookup(config, field)
        if not rule(value):
            raise UserError(f"config.{field} = {value!r}: expected {rule.expected}")


def check_app(config):
    """Checks `config` against the rules every app shares (COMMON_RULES, the
    optimizer's) and its app's, which live beside its defaults in
    configs/<config.app>.py: `RULES`, and `check(config)` for the checks
    across fields. Raises UserError."""
    import importlib

    from apps.core import optim

    module = importlib.import_module(f"configs.{config.app}")
    check(config, {**COMMON_RULES, **optim.RULES, **module.RULES})
    if hasattr(module, "check"):
        module.check(config)


# Fields every app's config has, and what they must hold.
COMMON_RULES = {
    "seed": non_negative_int,
    "deterministic": boolean,
    "strategy": one_of("default", "one_device", "mirrored", "multi_worker", "tpu"),
    "xla": Rule(lambda v: v is None or isinstance(v, bool),
                "true, false or unset (auto: on with a GPU or TPU, else config.xla_on_cpu)"),
    "xla_on_cpu": boolean,
    "mixed_precision": boolean,
    "train.batch_size": positive_int,
    "train.epochs": positive_int,
    "train.checkpoint_every": non_negative_int,
    "train.log_every": positive_int,
    "train.max_checkpoints": positive_int,
    "train.max_skipped_fraction": fraction,
    "export.tflite": boolean,
    "diagnosis.metric": Rule(lambda v: isinstance(v, str),
                             "'loss', a figure of the app's evaluation, or '' (off)"),
    "diagnosis.metric_is_error": boolean,
    "diagnosis.human_level_error": Rule(
        lambda v: v is None or (_is_number(v) and math.isfinite(v) and v >= 0),
        "an error >= 0 (a fraction for 1 - metric), or None when not known"),
    "diagnosis.train_dev_fraction": Rule(lambda v: _is_number(v) and 0 <= v < 0.5,
                                         "a fraction in [0, 0.5); 0 = no train-dev split"),
    "diagnosis.train_sample": non_negative_int,
    "tune.trials": positive_int,
    "tune.mode": Rule(lambda v: isinstance(v, str) and v, "a training mode, e.g. 'train'"),
    "tune.space": Rule(lambda v: isinstance(v, str), "'field = kind(args); ...' (apps.core.tune)"),
    "tune.metric": Rule(lambda v: isinstance(v, str), "a headline metric's name, or ''"),
    "tune.direction": one_of("maximize", "minimize"),
    "tune.pruner": one_of("median", "halving", "none"),
    "tune.coarse_share": Rule(lambda v: _is_number(v) and 0 < v <= 1, "a fraction in (0, 1]"),
    "tune.storage": Rule(lambda v: isinstance(v, str), "'' or an SQL database URL"),
    "tune.study": Rule(lambda v: isinstance(v, str), "a study name, or ''"),
    "tune.workers": non_negative_int,
}


def check_source_fields(data, readers):
    """Refuses a field of config.data set for a source this config does not use
    (a path given without the folder source would otherwise be ignored, and
    the run train on the embedded data without a word). `readers`:
    {field: the sources that read it}; a field counts as set when not empty."""
    for field, sources in readers.items():
        if data[field] and data.source not in sources:
            raise UserError(f"config.data.{field} = {data[field]!r} is read only when "
                            f"config.data.source is {' or '.join(map(repr, sources))}; this "
                            f"config's source is {data.source!r}")


def xla_enabled(config, replicas=1):
    """Whether the train step compiles with XLA: config.xla if set, else on with a
    GPU or TPU (config.strategy tpu, or a visible GPU), else config.xla_on_cpu,
    except for several replicas on CPUs (below). `replicas`: the strategy's
    replicas in sync, where the caller has one."""
    if config.strategy == "tpu":
        return config.xla is not False
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return config.xla is not False
    # TensorFlow's XLA cannot compile a step that reads variables mirrored on
    # several CPU devices, nor the workers' all-reduce ("Collectives are not yet
    # implemented for CPU devices").
    if config.strategy in ("mirrored", "multi_worker") or replicas > 1:
        if config.xla:
            raise UserError(f"config.xla = True: XLA cannot compile a step over several "
                            f"replicas on CPUs (strategy {config.strategy!r}; TensorFlow has "
                            "no XLA collectives for CPU devices); leave config.xla unset or "
                            "set it to false")
        return False
    return xla_on_this_cpu(config)


def xla_on_this_cpu(config):
    """What a one-replica run on a CPU does: config.xla if set, else config.xla_on_cpu."""
    return config.xla if config.xla is not None else config.xla_on_cpu


def common_config(app):
    """The sections every app's config starts from (filled in by the app)."""
    config = ml_collections.ConfigDict()
    config.app = app
    config.seed = 0
    # Deterministic kernels (without XLA), so a run and its resume agree exactly.
    config.deterministic = True
    config.strategy = "default"
    config.tpu = ""  # TPU address for strategy=tpu ('' = local / from the environment).
    # XLA for the train step: true, false, or unset (None, the default): on with a
    # GPU or TPU, where it fuses the step's small ops, and on a CPU what xla_on_cpu
    # says. xla_on_cpu is each app's faster side as measured on a 2-core CPU
    # (bench/RESULTS.md's training table): off for most, whose convolutions
    # oneDNN already runs well and XLA's CPU kernels run slower. Without XLA the
    # step's kernels are also deterministic (config.deterministic).
    config.xla = ml_collections.config_dict.placeholder(bool)
    config.xla_on_cpu = False
    config.mixed_precision = False
    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 32
    config.train.epochs = 10
    config.train.checkpoint_every = 100  # steps; 0 = only at epoch ends
    config.train.log_every = 10  # steps between TensorBoard scalars
    config.train.max_checkpoints = 3
    # Unreadable training files are skipped and counted; more than this share
    # of the training split stops the run (a wrong folder, a broken disk).
    config.train.max_skipped_fraction = 0.01
    config.export = ml_collections.ConfigDict()
    # Also write DIR/export_tflite/ (float and dynamic-range TensorFlow Lite
    # models, apps/core/tflite.py); only the vision apps can.
    config.export.tflite = False
    # The notes' diagnosis at the end of every run (apps/core/diagnosis.py):
    # the error on train, train-dev, dev and test against human-level error.
    config.diagnosis = ml_collections.ConfigDict()
    config.diagnosis.metric = "loss"  # configs/<app>.py: its headline metric; '' = off
    config.diagnosis.metric_is_error = True  # False: the error is 1 - metric
    # The proxy for the Bayes error; configs/<app>.py sets it (None: not known).
    config.diagnosis.human_level_error = ml_collections.FieldReference(None, field_type=float)
    config.diagnosis.train_dev_fraction = 0.05  # of the training split, never trained on
    config.diagnosis.train_sample = 0  # training examples evaluated; 0 = as many as dev
    # --mode=tune (apps.core.tune): random search over `space`, coarse to fine.
    config.tune = ml_collections.ConfigDict()
    config.tune.trials = 12
    config.tune.mode = "train"  # the mode each trial runs (an app's own training mode)
    config.tune.space = ""  # configs/<app>.py sets the app's default space
    config.tune.metric = ""  # a headline validation metric; '' = the first one
    config.tune.direction = "maximize"
    config.tune.pruner = "median"  # median | halving | none
    config.tune.coarse_share = 0.5  # trials in the first (coarse) round
    config.tune.storage = ""  # '' = sqlite:///WORKDIR/tune.db; or an SQL database URL
    config.tune.study = ""  # '' = the app's name
    config.tune.workers = 1  # tune processes on this machine; 0 = one per 4 cores
    return config


# The image augmentation every image app shares (apps.core.images.augment_image).
AUGMENT_RULES = {
    "data.augment.flip": boolean,
    "data.augment.shift": Rule(lambda v: 0 <= v < 0.5, "a fraction in [0, 0.5)"),
    "data.augment.rotation": Rule(lambda v: 0 <= v <= 180, "degrees in [0, 180]"),
    "data.augment.color": Rule(lambda v: 0 <= v <= 1, "a strength in [0, 1]"),
}


def augment_config(flip=False, shift=0.0, rotation=0.0, color=0.0):
    """config.data.augment of an image app (checked by AUGMENT_RULES)."""
    return ml_collections.ConfigDict(
        {"flip": flip, "shift": shift, "rotation": rotation, "color": color})


def to_json(config):
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def save(config, workdir):
    """Writes DIR/config.json (atomically: temp file then rename)."""
    path = os.path.join(workdir, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(to_json(config))
    os.replace(tmp, path)
    return path


def check_workdir_owner(config, workdir, fields=("model",)):
    """Refuses a workdir written by another app, or with other `fields`.

    The training length, data and speed settings may change between runs of
    one workdir (to train longer, or on other hardware); the model may not,
    since its checkpoint would not fit, nor any other field an app names in
    its Task.workdir_fields (e.g. the audio features a network was trained on).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UserError(f"--workdir={workdir} is a file; expected a folder (the run's folder)")
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            previous = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable config from an earlier run ({e})") from None
    if previous.get("app") != config.app:
        raise UserError(
            f"--workdir={workdir} holds a run of the {previous.get('app')!r} app, "
            f"not {config.app!r}; choose another --workdir")
    current = json.loads(to_json(config))
    for field in fields:
        now, then = _lookup_or_none(current, field), _lookup_or_none(previous, field)
        if now != then:
            raise UserError(
                f"--workdir={workdir} was trained with a different config.{field} "
                f"({_difference(then, now)}; see {path}); choose another --workdir or the "
                f"same config.{field}")
