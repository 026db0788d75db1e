"""Self-contained SavedModel export, written atomically.

The archive is written to a fresh temporary folder beside the target and then
swapped in with renames, so a crash at any moment leaves either the previous
export or the new one at DIR/export, never a half-written folder.
"""

import contextlib
import glob
import os
import re
import shutil
import tempfile

import keras

from apps.core import faults
from apps.core.data import graph_code


def write_saved_model(path, model, endpoints, variable_collections=None):
    """Writes `model` with `endpoints` ({name: (fn, input_signature)}) to `path`.

    The first endpoint is also `serving_default`.
    """
    with staged_folder(path) as staged:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, (fn, signature) in endpoints.items():
            archive.add_endpoint(name, graph_code(fn), input_signature=signature)
        for name, variables in (variable_collections or {}).items():
            archive.add_variable_collection(name, variables)
        archive.write_out(staged, verbose=False)
    return path


@contextlib.contextmanager
def staged_folder(path):
    """Yields a folder path (not yet created) to write into; it replaces `path` on success.

    The folder lies in a fresh temporary folder beside `path` (named `.export-*`,
    so `recover` removes what a killed writer left); an exception leaves `path`
    as it was.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    recover(path)
    # The writer's pid in the name lets `recover` tell a killed writer's
    # leftovers from a live writer's folder (another process on the workdir).
    tmp = tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=parent)
    faults.export_started()
    try:
        staged = os.path.join(tmp, "staged")
        yield staged
        _swap_in(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    faults.export_ended()


def _swap_in(staged, path):
    old = path + ".old"
    if os.path.exists(path):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
    os.rename(staged, path)
    shutil.rmtree(old, ignore_errors=True)


def recover(path):
    """Puts back the previous export if a crash fell between the two renames,
    and removes the staging folders of writers that were killed (those whose
    process no longer runs; a live writer's folder is left alone)."""
    for staging in glob.glob(os.path.join(os.path.dirname(os.path.abspath(path)), ".export-*")):
        if not _writer_alive(staging):
            shutil.rmtree(staging, ignore_errors=True)
    old = path + ".old"
    if os.path.exists(old):
        if os.path.exists(path):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, path)


def _writer_alive(staging):
    """Whether the process named in a `.export-<pid>-*` folder still runs here."""
    found = re.match(r"\.export-(\d+)-", os.path.basename(staging))
    if not found:
        return False
    try:
        os.kill(int(found.group(1)), 0)  # signal 0: only asks whether it exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True
