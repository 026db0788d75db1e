"""What the apps' bad-input tables (tests/apps/<app>/test_bad_input.py) share.

A table is a list of rows, one mistake each. Two shapes of row:

- `case(id, make, *needles)` / `loads(...)`: `make(tmp)` sets up the mistake and
  returns what to run: {"config": ..., and optionally "workdir", "mode",
  "input", absl "flags" and a "within" context (a mocked TFDS)}.
  `expect_user_error` runs it; `TinyConfig` writes the config.
- `Case` (face_recognition, style_transfer): a row is a chain of setters on a
  Case, and `Error` or `Skips` says what the user must read; `expect_outcome`
  runs it.
"""

import contextlib
import os
from collections.abc import Callable
from typing import NamedTuple

import pytest

from apps.core import config as config_lib
from apps.core.main import execute
from tests.apps.cli import assert_user_error, run_app, user_error_of


def edit_config(config, changes):
    """Sets each {"section__field": value} of `changes` in `config` and returns it;
    "section.field" is read the same, and a bare "field" is a top-level one."""
    for key, value in changes.items():
        *sections, field = key.replace("__", ".").split(".")
        (config_lib.lookup(config, ".".join(sections)) if sections else config)[field] = value
    return config


def files_under(folder):
    """{relative path: (size, mtime)} of every file under `folder` (None if absent)."""
    folder = str(folder)
    if not os.path.exists(folder):
        return None
    return {os.path.relpath(os.path.join(top, f), folder):
            (os.path.getsize(os.path.join(top, f)), os.path.getmtime(os.path.join(top, f)))
            for top, _, files in os.walk(folder) for f in files}


def assert_contains(text, needles):
    """`text` (the warnings, the printed lines) holds every one of `needles`."""
    for needle in needles:
        assert needle in text, (needle, text)


# ------------------------------------------------------------- make(tmp) rows


class TinyConfig:
    """`tiny(variant="tiny", **changes)`: configs/<app>.py:<variant> with `changes`
    ({"section__field": value}, see `edit_config`)."""

    def __init__(self, get_config):
        self.get_config = get_config

    def __call__(self, variant="tiny", **changes):
        return edit_config(self.get_config(variant), changes)

    def case(self, id, needles, **changes):
        """A row whose whole mistake is the tiny config with `changes`."""
        return case(id, lambda t: {"config": self(**changes)}, *needles)


class Row(NamedTuple):
    """One row: `make` sets up the mistake; `check` is None for a user error."""
    make: Callable
    needles: tuple
    check: Callable | None = None


def case(id, make, *needles):
    """A mistake that ends the run with one line holding every one of `needles`."""
    return pytest.param(Row(make, needles), id=id)


def loads(id, make, *needles, check=None):
    """Files the app reads past: the load (or --mode) succeeds, the warnings (and
    printed lines) hold every one of `needles`, and `check(...)` holds."""
    return pytest.param(Row(make, needles, check or (lambda *result: None)), id=id)


@contextlib.contextmanager
def nothing_started(workdir):
    """The block writes no checkpoint under workdir/ckpt and changes none there."""
    before = files_under(os.path.join(workdir, "ckpt"))
    yield
    assert files_under(os.path.join(workdir, "ckpt")) == before, "a checkpoint was written"


def earlier_run(tmp, config=None, config_json=None):
    """tmp/run as an earlier run left it: its config.json saved from `config`, or
    holding the text `config_json` (a corrupt one). Returns the folder."""
    run = tmp / "run"
    run.mkdir(exist_ok=True)
    if config is not None:
        config_lib.save(config, str(run))
    else:
        (run / "config.json").write_text(config_json)
    return run


def workdir_of(made, tmp_path):
    """The row's workdir: the one `made` names, else tmp/run."""
    return made.get("workdir") or tmp_path / "run"


def expect_user_error(task_cls, made, tmp_path, needles):
    """Runs what a row's `make` returned (`made`) through the entrypoint's work
    (tests/apps/cli.py's `user_error_of`), inside its "within" context and with
    its app flags (Task.flags): the run must end in one line holding every one of
    `needles`, having started nothing (no checkpoint written)."""
    workdir = workdir_of(made, tmp_path)
    with made.get("within") or contextlib.nullcontext(), nothing_started(workdir):
        user_error_of(task_cls, made["config"], workdir, *needles,
                      mode=made.get("mode") or "train", input=made.get("input"),
                      **made.get("flags", {}))


def expect_unknown_field(app, workdir, flag):
    """`python -m apps.<app> <flag>`, a misspelt `--config.<field>=value`, stops
    with one line naming the flag as an unknown config field, before anything starts."""
    result = run_app(app, workdir, flag, check=False)
    assert_user_error(result, flag.partition("=")[0], "unknown or invalid config field")
    assert not (workdir / "ckpt").exists()


# ------------------------------------------------------------------ Case rows


class Error:
    """The run stops with one line holding every needle."""

    def __init__(self, *needles):
        self.needles = needles


class Skips:
    """The run goes on: the warnings hold every needle, stdout every `out`, and
    the loader keeps the counts `kept` (e.g. images=24), as `Case.kept()` gives them."""

    def __init__(self, *needles, out=(), **kept):
        self.needles, self.out, self.kept = needles, out, kept


class Case:
    """One row's run: the tiny config, a workdir, the mode, --input and app flags.

    An app subclasses it, sets `get_config` (its configs/<app>.py function) and
    adds the files it reads; for `Skips` rows with counts, its `kept()` returns
    {what: count} its loader keeps of the row's data (e.g. {"images": 24}).
    The setters return the case, so a row's setup is one chained expression.
    """

    get_config: Callable

    def __init__(self, tmp_path, request):
        self.tmp = tmp_path
        self.request = request
        self.config = self.get_config("tiny")
        self.app = self.config.app
        self.workdir = str(tmp_path / "run")
        self.mode, self.input, self.flags, self.cli = "train", None, {}, None

    def set(self, mode=None, input=None, cli=None, **flags):
        """mode, --input, the app's absl flags (e.g. style=...), or `cli` flags
        (the row then runs `python -m apps.<app>` with them)."""
        self.mode = mode or self.mode
        self.input = self.path(input) if input else self.input
        if cli is not None:
            self.cli = [self.path(f) for f in cli]
        self.flags.update({k: self.path(v) for k, v in flags.items()})
        return self

    def path(self, value):
        """'@name' is a path under this row's folder; anything else is as given."""
        if "@" not in value:
            return value
        head, _, name = value.partition("@")
        return head + str(self.tmp / name)

    def field(self, dotted, value):
        edit_config(self.config, {dotted: value})
        return self

    def folder(self, name):
        os.makedirs(self.tmp / name, exist_ok=True)
        return self

    def file(self, name, text="not an image"):
        os.makedirs(os.path.dirname(self.tmp / name), exist_ok=True)
        (self.tmp / name).write_text(text)
        return self

    def previous_run(self, app=None, **fields):
        """DIR/config.json of an earlier run of `app` (this one if None): the
        tiny config with `fields` ({"section__field": value}) changed."""
        earlier = edit_config(self.get_config("tiny"), fields)
        earlier.app = app or self.app
        os.makedirs(self.workdir, exist_ok=True)
        config_lib.save(earlier, self.workdir)
        return self

    def run_of(self, fixture, *links):
        """The workdir holds the session's run that `fixture` made: a copy of its
        config.json and links to its `links` (e.g. "export")."""
        run = self.request.getfixturevalue(fixture)
        os.makedirs(self.workdir, exist_ok=True)
        for name in links:
            os.symlink(os.path.join(run, name), os.path.join(self.workdir, name))
        with open(os.path.join(run, "config.json")) as f:
            recorded = f.read()
        with open(os.path.join(self.workdir, "config.json"), "w") as f:
            f.write(recorded)
        return self


def expect_outcome(case, expect, task_cls, caplog, capsys):
    """Runs a Case row and checks what the user reads.

    `Error`: `python -m apps.<app>` with the row's `cli` flags, else the
    entrypoint's work in this process with its app flags; either way one
    `error:` line holding every needle, and nothing in the workdir written or lost.
    `Skips`: the loader alone (`case.kept()`, training on it is tested
    elsewhere) when the row gives the counts it keeps, else the row's mode; the
    warnings and stdout hold what the row says.
    """
    if isinstance(expect, Error):
        before = files_under(case.workdir)
        if case.cli is not None:
            result = run_app(case.app, case.workdir, *case.cli, check=False)
            assert_user_error(result, *expect.needles)
        else:
            user_error_of(task_cls, case.config, case.workdir, *expect.needles,
                          mode=case.mode, input=case.input, **case.flags)
        assert files_under(case.workdir) == before  # nothing written, nothing lost
        return
    if expect.kept:
        assert case.kept() == expect.kept
    else:
        execute(task_cls, case.config, case.workdir, case.mode, case.input, **case.flags)
    assert_contains(caplog.text, expect.needles)
    assert_contains(capsys.readouterr().out, expect.out)
