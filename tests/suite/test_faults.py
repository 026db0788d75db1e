"""Faults, every app: SIGKILL at random steps, then the same command again.

For each app's tiny config (checkpoints every step or few steps):
- an uninterrupted run gives the reference metrics;
- a second run in a fresh workdir is killed with SIGKILL at two random
  points drawn from a seed, two seeds per app (the process kills itself,
  through apps.core.faults, a random time after a random step: a kill sent
  from here would race the end of a run this short), restarted with the
  same command each time; every restart must resume from the latest checkpoint on disk
  (so no more than one checkpoint interval is lost), and the final metrics
  must equal the reference's;
- `--mode=export` over a finished run is killed while it writes (again by
  itself, a random time after its staging folder appears): the earlier
  export must still load (DIR/export, or DIR/export.old between the two
  renames, which the next start puts back), and the next export succeeds.

These runs are slow (minutes in all), so they carry the `slow` marker: `make
test-slow` runs them, and CI runs them after `make test`.
"""

import glob
import os
import random
import re
import shutil
import signal

import pytest
import tensorflow as tf

from apps.core.faults import KILL_AT_STEP, KILL_IN_EXPORT
from apps.core.workdir import read_metrics
from tests.apps import cli
from tests.suite.runs import APPS, flags_of, is_timing

pytestmark = pytest.mark.slow

# Each seed draws two kill points (steps and delays) for every app.
KILL_SEEDS = (1, 2)


def _latest_step(workdir):
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
    return int(re.search(r"ckpt-(\d+)$", latest).group(1)) if latest else 0


def _restored_step(stderr):
    found = re.findall(r"Restored \S+ \(step (\d+)\)", stderr)
    return int(found[-1]) if found else 0


def _checkpoint_interval(flags):
    return int(re.search(r"checkpoint_every=(\d+)", " ".join(flags)).group(1))


def _killed_run(case, flags, workdir, rng, after_step, total_steps):
    """Runs training until it SIGKILLs itself (apps.core.faults) at a random
    point: a random delay of up to half a second after the train call that
    reaches a random step between `after_step` and halfway to the end. The
    checkpoint interval is short, so the kill falls anywhere in one: during
    a train call, a checkpoint write or an evaluation. Returns the step of
    the latest checkpoint on disk and the run's log."""
    target = rng.randint(after_step + 1, after_step + max(1, (total_steps - after_step) // 2))
    kill = f"{target}+{rng.uniform(0.0, 0.5):.3f}"
    result = cli.run_app(case.app, workdir, *flags, check=False, env={KILL_AT_STEP: kill})
    assert result.returncode == -signal.SIGKILL, (kill, result.stderr[-3000:])
    assert read_metrics(workdir) is None
    latest = _latest_step(workdir)
    # At most one checkpoint interval is lost.
    assert latest >= target - _checkpoint_interval(flags), (kill, latest)
    return latest, result.stderr


@pytest.mark.parametrize("kill_seed", KILL_SEEDS)
@pytest.mark.parametrize("name", sorted(APPS))
def test_sigkill_at_random_steps_then_resume_gives_the_uninterrupted_result(
        name, kill_seed, reference, suite_files, tmp_path):
    case = APPS[name]
    flags = flags_of(case, suite_files)
    expected = read_metrics(reference(name))
    total_steps = _latest_step(reference(name))
    rng = random.Random(f"faults-{name}-{kill_seed}")
    workdir = str(tmp_path / "run")
    step = 0
    for _ in range(2):
        killed_at, log = _killed_run(case, flags, workdir, rng, step, total_steps)
        # Each restart resumed from the latest checkpoint, not an older one or step 0.
        assert _restored_step(log) == step, log[-3000:]
        step = killed_at
    resumed = cli.run_app(case.app, workdir, *flags)
    assert _restored_step(resumed.stderr) == step, resumed.stderr[-3000:]
    metrics = read_metrics(workdir)
    for key, value in expected.items():
        if not is_timing(key):
            assert metrics[key] == value, (key, metrics[key], value)
    if case.exports:
        assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))
    assert not glob.glob(os.path.join(workdir, ".export-*"))


def _serving_outputs(path):
    """Loads a SavedModel and names its serving signature's outputs."""
    loaded = tf.saved_model.load(path)
    return sorted(loaded.signatures["serving_default"].structured_outputs)


@pytest.mark.parametrize("name", sorted(n for n, c in APPS.items() if c.exports))
def test_a_kill_while_exporting_never_leaves_a_half_written_export(
        name, reference, suite_files, tmp_path):
    case = APPS[name]
    flags = flags_of(case, suite_files)
    workdir = str(tmp_path / "run")
    shutil.copytree(reference(name), workdir)
    export = os.path.join(workdir, "export")
    outputs = _serving_outputs(export)
    rng = random.Random(f"export-{name}")
    for _ in range(2):
        # The run SIGKILLs itself (apps.core.faults) a random time after its
        # staging folder appears, before the export returns.
        kill = f"{rng.uniform(0.0, 1.0):.3f}"
        result = cli.run_app(case.app, workdir, *flags, "--mode=export", check=False,
                             env={KILL_IN_EXPORT: kill})
        assert result.returncode == -signal.SIGKILL, (kill, result.stderr[-3000:])
        # Either the earlier export is in place, or (killed between the two
        # renames) it waits complete in export.old for the next start.
        intact = export if os.path.exists(export) else export + ".old"
        assert _serving_outputs(intact) == outputs
    cli.run_app(case.app, workdir, *flags, "--mode=export")
    assert _serving_outputs(export) == outputs
    assert not os.path.exists(export + ".old")
    assert not glob.glob(os.path.join(workdir, ".export-*"))  # the killed runs' leftovers
