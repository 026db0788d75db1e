"""apps.core.images.read_image: the reader every image app shares."""

import numpy as np
import pytest
from PIL import Image

from apps.core.errors import UserError
from apps.core.images import read_image


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 1000, 514]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # saved as a 16-bit PNG
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")
    grey = read_image(tmp_path / "deep.png", channels=1)
    np.testing.assert_array_equal(grey[..., 0], np.round(values / 257.0).astype(np.uint8))
    rgb = read_image(tmp_path / "deep.png", channels=3)
    np.testing.assert_array_equal(rgb, np.repeat(grey, 3, axis=-1))


def test_eight_bit_images_are_read_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)


@pytest.mark.parametrize("write, expected", [
    (lambda p: p.write_bytes(b"not an image"), "not a readable image"),
    (lambda p: Image.fromarray(np.ones((3, 3), np.float32)).save(p.with_suffix(".tif")),
     "floating-point pixels"),
])
def test_unreadable_images_name_the_file(tmp_path, write, expected):
    path = tmp_path / "bad.png"
    write(path)
    target = path if path.exists() else path.with_suffix(".tif")
    with pytest.raises(UserError, match=expected) as error:
        read_image(target)
    assert str(target) in str(error.value)


def test_the_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((2, 4, 3), np.uint8)
    pixels[0, 0] = 255  # a white top-left pixel in the stored (landscape) order
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: the stored image must be rotated 90 degrees clockwise
    image.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (4, 2, 3)
    assert upright[0, -1].min() > 200 and upright[-1, 0].max() < 60  # now at the top right


def test_image_files_leave_out_hidden_and_system_files(tmp_path):
    from apps.core.images import image_files

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "._a.png").write_bytes(b"a Mac's resource fork")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "a.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "sub" / "b.jpg")
    assert image_files(str(tmp_path)) == [str(tmp_path / "a.png"), str(tmp_path / "sub" / "b.jpg")]
