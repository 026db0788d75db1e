"""Running an app as a user does, for the end-to-end and suite tests.

`run_app` runs `python -m apps.<app> --config=configs/<app>.py:<variant>` in a
subprocess from the repository root; `start_app` starts one without waiting
(the workers of a cluster); `run_isolated` runs a script in a Python that
cannot import the project, as a serving process would (a SavedModel must
stand on its own). Tests that kill a run have it kill itself at a chosen
point (apps.core.faults), which a kill from outside would race.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The first lines of every isolated script: the project's packages are hidden.
ISOLATION = ("import sys\n"
             "for _name in ('apps', 'layers', 'optimizers', 'configs', 'bench'):\n"
             "    sys.modules[_name] = None\n")


def app_command(app, workdir, *flags, variant="tiny"):
    """The command line of one run of `app` on configs/<app>.py:<variant>."""
    config = f"configs/{app}.py" + (f":{variant}" if variant else "")
    return [sys.executable, "-m", f"apps.{app}", f"--config={config}", f"--workdir={workdir}",
            *flags]


def run_app(app, workdir, *flags, variant="tiny", check=True, env=None, timeout=600):
    """Runs the app to the end; asserts exit 0 unless `check` is False."""
    result = subprocess.run(app_command(app, workdir, *flags, variant=variant), cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout,
                            env=_environment(env))
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_app(app, workdir, *flags, variant="tiny", env=None, log=None):
    """Starts the app in the background; returns the Popen."""
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(app_command(app, workdir, *flags, variant=variant), cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT if log else out,
                            env=_environment(env))


def run_isolated(script, *args, cwd=None, timeout=180):
    """Runs `script` (after ISOLATION) with `args`; returns the JSON of its last line."""
    result = subprocess.run([sys.executable, "-I", "-c", ISOLATION + script, *map(str, args)],
                            cwd=cwd or "/", capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _environment(extra):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def assert_user_error(result, *needles):
    """The run failed as a user error should: exit status 2, no traceback, and
    one `error: ...` line on stderr that contains every one of `needles`."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, (result.returncode, result.stderr[-3000:])
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def user_error_of(task_cls, config, workdir, *needles, mode="train", input=None, **options):
    """Runs the entrypoint's work in this process (apps.core.main.execute, as
    `python -m apps.<app>` does, minus the process start) and returns the
    message of the UserError it must raise: one line holding every needle.
    `options` are the app's own flags (Task.flags).
    Any other exception fails the test with its traceback."""
    import pytest

    from apps.core import main
    from apps.core.errors import UserError

    with pytest.raises(UserError) as error:
        main.execute(task_cls, config, str(workdir), mode, input, **options)
    message = str(error.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message
