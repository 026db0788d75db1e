"""Training throughput of every app's default config, with and without XLA.

For each app (and the translation config's Transformer), the default
config's `Trainer` is built twice, `xla: false` and `xla: true`, and timed
as `Trainer.train` runs it for metrics.json's examples_per_sec: the train
steps on the real input pipeline (apps.core.data.train_stream with the app's
augmentation), several per call up to the next log, checkpoint or epoch
boundary (Trainer.steps_in_call), the losses brought back to the host after
each call. A third side, `one_per_call`, times the trainer without XLA the
way Trainer.train ran it before (one call per step, the loss fetched and the
step counter set after each): the before/after of that change, measured in
the same run. After a warm-up (the first call traces and compiles), rounds
alternate between the sides, so that drift on a shared machine hits them
alike; the medians over rounds are reported, with the load average.

    examples/sec = steps per round x global batch / seconds of the round

Each trainer runs in its own child process, set up as the app's entrypoint
sets it up (op determinism on without XLA when config.deterministic, off
with XLA, which has no deterministic max-pool gradient), and process-wide
state (the Keras precision policy, XLA's caches) cannot leak between apps;
the two children of an app stay alive so that their rounds alternate.

For the classification ResNet and the Transformer the child also counts the
training FLOPs per example (bench.flops) from the same model and batch.

    python -m bench training [case ...]     # e.g. classification "translation (transformer)"
"""

import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from apps.core import config as config_lib
from bench.common import write_json
from bench.machine import load_average


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: an app's config (variant) and what one of its examples is."""

    name: str
    app: str  # apps.<app>.task holds `task`, configs/<app>.py the config
    task: str
    example: str
    variant: str = ""
    count_flops: bool = False

    def config(self):
        return importlib.import_module(f"configs.{self.app}").get_config(self.variant)

    def task_class(self):
        return getattr(importlib.import_module(f"apps.{self.app}.task"), self.task)

    def no_xla_reason(self):
        """Why XLA is not measured (the app's config rules refuse xla: true), or None."""
        rule = importlib.import_module(f"configs.{self.app}").RULES.get("xla")
        return None if rule is None or rule(True) else f"config.xla must be {rule.expected}"


CASES = (
    Case("classification", "classification", "ClassificationTask",
         "a 16x16 digit image (ResNet)", count_flops=True),
    Case("detection", "detection", "DetectionTask", "a 96x96 scene of digits"),
    Case("segmentation", "segmentation", "SegmentationTask", "an image and its mask (U-Net)"),
    Case("face_recognition", "face_recognition", "FaceRecognitionTask",
         "a face image (P x K batches, triplet loss)"),
    Case("style_transfer", "style_transfer", "StyleTransferTask",
         "a 128x128 content crop (the fast stylizer, --mode=train_fast)"),
    Case("embeddings", "embeddings", "EmbeddingsTask",
         "a chunk of the corpus (its skip-gram pairs with negatives)"),
    Case("translation", "translation", "TranslationTask",
         "a date pair (the attention model)"),
    Case("translation (transformer)", "translation", "TranslationTask",
         "a date pair (the Transformer)", variant="transformer", count_flops=True),
    Case("trigger_word", "trigger_word", "TriggerWordTask",
         "a clip (spectrogram, Conv1D + GRU)"),
)


def _case(name):
    for case in CASES:
        if case.name == name:
            return case
    raise SystemExit(f"unknown case {name!r}; expected one of "
                     + ", ".join(repr(c.name) for c in CASES))


class _Runner:
    """One trainer on its own endless input stream, stepped as `Trainer.train` steps it."""

    def __init__(self, case, xla, workdir):
        import tensorflow as tf

        from apps.core.trainer import Trainer

        config = case.config()
        config.xla = xla
        if config.get("deterministic", True) and not xla:  # as apps.core.main.execute
            tf.config.experimental.enable_op_determinism()
        self.trainer = Trainer(case.task_class()(config), workdir)
        self.train_steps = self.trainer.train_step_function(steps=True)
        self.train_step = self.trainer.train_step_function()
        self.iterator = iter(self.trainer.train_dataset(0))
        self.batch = self.trainer.global_batch
        self.done = 0
        start = time.perf_counter()
        self._call(1)  # traces (and with XLA compiles)
        self.first_step_seconds = time.perf_counter() - start
        float(self.train_step(self.iterator))  # traces the one-step function too

    def _call(self, count):
        import tensorflow as tf

        self.train_steps(self.iterator, tf.constant(count, tf.int32))[0].numpy()
        self.done += count

    def run(self, steps):
        """Examples/sec over `steps` steps, called as Trainer.train calls them:
        to the next log, checkpoint or epoch boundary, the losses fetched after each call."""
        start = time.perf_counter()
        left = steps
        while left:
            count = min(left, self.trainer.steps_in_call(self.done))
            self._call(count)
            left -= count
        return steps * self.batch / (time.perf_counter() - start)

    def run_one_per_call(self, steps):
        """Examples/sec over `steps` steps called one at a time, as Trainer.train did
        before several steps per call: the loss fetched and the step counter set each step."""
        start = time.perf_counter()
        for _ in range(steps):
            float(self.train_step(self.iterator))
            self.done += 1
            self.trainer.step.assign(self.done)
        return steps * self.batch / (time.perf_counter() - start)


def serve(case, xla):
    """The child's side: builds a `_Runner`, then answers the parent's commands.

    Reads lines `run STEPS` and `run_one_per_call STEPS` (answer examples/sec),
    `peak` (one round of bench.machine.matmul_peak: GFLOP/s), `flops`
    (bench.flops.training_flops) and `quit`; every answer is one line of JSON
    after the _REPLY prefix, so that anything else a library prints is ignored.
    """
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        runner = _Runner(case, xla, tmp)
        _reply({"batch": runner.batch, "first_step_seconds": runner.first_step_seconds})
        for line in sys.stdin:
            command, *args = line.split()
            if command in ("run", "run_one_per_call"):
                _reply(getattr(runner, command)(int(args[0])))
            elif command == "flops":
                from bench import flops

                _reply(flops.training_flops(runner.trainer))
            elif command == "peak":
                from bench import machine

                _reply(machine.matmul_peak(rounds=1)["best_gflops"])
            else:
                return


_REPLY = "@bench "


def _reply(value):
    print(_REPLY + json.dumps(value), flush=True)


class _Child:
    """A `serve` process for one (case, xla), driven line by line."""

    def __init__(self, case, xla, timeout):
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile("w+")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.training", "--serve", case.name, str(int(xla))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=env)
        self.ready = None

    def wait_ready(self):
        self.ready = self._answer()

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self):
        for line in self.proc.stdout:
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY):])
        self.proc.wait(self.timeout)
        self.stderr.seek(0)
        lines = [x for x in self.stderr.read().splitlines() if x.strip()]
        raise RuntimeError((lines[-1] if lines else f"exit status {self.proc.returncode}")[:300])

    def close(self):
        """Asks the child to quit without waiting: TensorFlow takes seconds to
        shut down, which can overlap the next app's start (see `_reap`)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except OSError:
                self.proc.kill()
        _closing.append(self.proc)
        self.stderr.close()


_closing = []


def _reap(timeout=60):
    """Waits for the children asked to quit (kills any still running after `timeout`)."""
    while _closing:
        proc = _closing.pop()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(case, rounds=5, round_seconds=1.0, warmup_steps=3, timeout=600):
    """Times `case` with and without XLA, alternating; returns its result row.

    Each trainer lives in its own child process (`serve`), configured as the
    app's entrypoint would (op determinism only without XLA), and both stay
    alive so that their rounds can alternate.
    """
    load_start = load_average()
    started = time.perf_counter()
    config = case.config()
    no_xla_reason = case.no_xla_reason()
    modes = (False,) if no_xla_reason else (False, True)
    row = {"case": case.name, "example": case.example, "variant": case.variant,
           "batch": config.train.batch_size, "no_xla_reason": no_xla_reason,
           "cpu_default_xla": bool(config_lib.xla_on_this_cpu(config))}
    children = {}
    try:
        for xla in modes:  # both build (and compile) at once
            children[xla] = _Child(case, xla, timeout)
        for child in children.values():
            child.wait_ready()
            child.ask(f"run {warmup_steps}")
        # Steps per round: about round_seconds for the slower trainer.
        slowest = min(child.ask(f"run {warmup_steps}") for child in children.values())
        steps = max(2, round(round_seconds * slowest / row["batch"]))
        sides = [("no_xla", children[False], "run"),
                 ("one_per_call", children[False], "run_one_per_call")]
        if True in children:
            sides.append(("xla", children[True], "run"))
        if case.count_flops:  # the machine's peak in the same rounds, for the share of it
            sides.append(("peak_gflops", children[False], "peak"))
        speeds = {key: [] for key, _, _ in sides}
        for r in range(rounds):
            for key, child, command in (sides if r % 2 == 0 else sides[::-1]):
                speeds[key].append(child.ask(f"{command} {steps}"))
        if case.count_flops:
            row["flops"] = children[False].ask("flops")
    except RuntimeError as e:
        return {**row, "error": str(e), "wall_seconds": time.perf_counter() - started}
    finally:
        for child in children.values():
            child.close()
    row.update({"steps_per_round": steps, "rounds": rounds, "round_seconds": round_seconds,
                "load_average_start": load_start, "load_average_end": load_average(),
                "wall_seconds": time.perf_counter() - started})
    for key, values in speeds.items():
        name = key if key == "peak_gflops" else f"{key}_examples_per_sec"
        row[name] = statistics.median(values)
        row[f"{key}_per_round"] = values
    for xla, child in children.items():
        row[f"{'xla' if xla else 'no_xla'}_first_step_seconds"] = child.ready["first_step_seconds"]
    row["steps_per_call_gain"] = (row["no_xla_examples_per_sec"]
                                  / row["one_per_call_examples_per_sec"])
    if "xla" in speeds:
        row["xla_ratio"] = row["xla_examples_per_sec"] / row["no_xla_examples_per_sec"]
    return row


def print_table(rows):
    print("\nTraining throughput, default configs (examples/s; median of alternating rounds)")
    head = (f"{'app':<28}{'batch':>6}{'no XLA':>10}{'1/call':>10}{'gain':>7}{'XLA':>10}"
            f"{'XLA/no':>8}  load start-end")
    print(head)
    print("-" * len(head))
    for row in rows:
        if "error" in row:
            print(f"{row['case']:<28}  failed: {row['error']}")
            continue
        xla = row.get("xla_examples_per_sec")
        print(f"{row['case']:<28}{row['batch']:>6}{row['no_xla_examples_per_sec']:>10.1f}"
              f"{row['one_per_call_examples_per_sec']:>10.1f}{row['steps_per_call_gain']:>7.2f}"
              + (f"{xla:>10.1f}{row['xla_ratio']:>8.2f}" if xla else f"{'n/a':>10}{'':>8}")
              + f"  {row['load_average_start'][0]}-{row['load_average_end'][0]}")


def main(names=None):
    cases = [_case(n) for n in names] if names else list(CASES)
    rows = []
    for case in cases:
        rows.append(measure(case))
        row = rows[-1]
        print(f"{case.name}: " + (row["error"] if "error" in row else
                                  f"{row['no_xla_examples_per_sec']:.1f} / "
                                  f"{row.get('xla_examples_per_sec') or float('nan'):.1f} "
                                  f"examples/s ({row['wall_seconds']:.0f} s)"), flush=True)
    _reap()
    print_table(rows)
    write_json("training.json", {"rows": rows})
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(_case(sys.argv[2]), bool(int(sys.argv[3])))
    else:
        main(sys.argv[1:])
