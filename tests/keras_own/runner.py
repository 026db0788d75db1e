"""Runs Keras's own unit tests against this library's classes.

The installed keras package ships its test files (for example
keras/src/optimizers/adam_test.py). `load` executes one of them as a fresh
module (the keras copy is never modified) and rebinds, in that module only,
the name of the Keras class to ours, built with the arguments that select
Keras's form (Keras's defaults where ours differ, such as epsilon=1e-7 and
epsilon-hat for Adam). A test module that reaches the class through a package
(`layers.BatchNormalization`) gets a stand-in package that answers ours for
that one name and Keras's for every other.

Nothing is copied from Keras: the tests are read from site-packages, so they
follow whichever keras version is installed.
"""

import importlib.util
import os
import types
import unittest

import keras


def keras_test_file(relative_path):
    """The absolute path of a test file inside the installed keras package."""
    return os.path.join(os.path.dirname(keras.__file__), "src", relative_path)


def keras_form(cls, **keras_defaults):
    """`cls` with `keras_defaults` as the defaults of its constructor.

    A subclass (so isinstance, class methods and `from_config` work) with the
    name of `cls`, registered for serialization under the package "keras_own"
    so that a config it writes deserializes to the same form.
    """

    class KerasForm(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**keras_defaults, **kwargs})

    KerasForm.__name__ = cls.__name__
    KerasForm.__qualname__ = cls.__qualname__
    KerasForm.__module__ = cls.__module__
    KerasForm.__doc__ = cls.__doc__
    return keras.saving.register_keras_serializable(package="keras_own")(KerasForm)


def _package_with(package, name, replacement):
    """A stand-in for `package` whose attribute `name` is `replacement`."""
    stand_in = types.ModuleType(package.__name__)
    stand_in.__dict__.update(vars(package))
    setattr(stand_in, name, replacement)
    return stand_in


def load(relative_path, swaps):
    """Executes a Keras test file with names rebound to our classes.

    Args:
        relative_path: path under keras/src, e.g. "optimizers/adam_test.py".
        swaps: {"Adam": ours} rebinds the module-level name `Adam`;
            {"layers.BatchNormalization": ours} rebinds the attribute of the
            module-level package `layers` (in this module only).

    Returns:
        The executed module; its `unittest.TestCase` classes run our classes.
    """
    path = keras_test_file(relative_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"keras {keras.__version__} ships no {relative_path}")
    module_name = "keras_own." + relative_path.replace("/", ".").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for target, replacement in swaps.items():
        package_name, _, name = target.rpartition(".")
        if package_name:
            package = getattr(module, package_name)
            setattr(module, package_name, _package_with(package, name, replacement))
        else:
            if not hasattr(module, name):
                raise AttributeError(f"{relative_path} has no name {name!r} to swap")
            setattr(module, name, replacement)
    return module


def deselect(test_case, reasons):
    """A subclass of `test_case` whose tests named in `reasons` are skipped,
    each with its reason (pytest -ra lists them). A name the installed keras
    does not have is ignored: its test files change between versions."""
    skipped = {
        name: unittest.skip(f"deselected: {reason}")(getattr(test_case, name))
        for name, reason in reasons.items()
        if hasattr(test_case, name)
    }
    return type(test_case.__name__, (test_case,), skipped)
