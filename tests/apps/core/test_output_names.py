"""apps.core.workdir.output_names: a distinct output name for every predict input."""

import os

from apps.core.workdir import output_names


def _touch(root, *relative):
    paths = []
    for r in relative:
        path = os.path.join(root, r)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
        paths.append(path)
    return paths


def test_one_file_is_named_by_its_stem(tmp_path):
    file, = _touch(tmp_path, "photo.jpg")
    assert output_names([file], file) == {file: "photo"}


def test_folders_are_joined_or_kept(tmp_path):
    files = _touch(tmp_path, "a/x.png", "b/x.png", "y.png")
    assert list(output_names(files, str(tmp_path)).values()) == ["a_x", "b_x", "y"]
    kept = output_names(files, str(tmp_path), keep_folders=True)
    assert list(kept.values()) == [os.path.join("a", "x"), os.path.join("b", "x"), "y"]


def test_inputs_that_would_share_a_name_keep_their_extension(tmp_path):
    files = _touch(tmp_path, "y.jpg", "y.png", "z.png")
    assert list(output_names(files, str(tmp_path)).values()) == ["y_jpg", "y_png", "z"]


def test_a_name_still_taken_gets_a_number(tmp_path):
    # a/x.png flattens to a_x, which the top-level a_x.png also is.
    files = _touch(tmp_path, "a/x.png", "a_x.png", "a_x_png.png")
    names = list(output_names(files, str(tmp_path)).values())
    assert names == ["a_x_png", "a_x_png_2", "a_x_png_3"]
