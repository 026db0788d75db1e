"""Style-transfer images: the embedded photographs, reading, resizing, saving.

The embedded photographs ship with scikit-learn (`china`, `flower`) and
scikit-image (`astronaut`, `chelsea`, `coffee`, `rocket`, `hubble`, `ihc`,
`motorcycle`, `camera`), so the app runs with no download. Wherever the app
takes an image (`--content`, `--style`, `config.data.content`,
`config.data.style`) it takes a file path or one of these names; an existing
file wins over a name.

Images are held as uint8 NumPy arrays (H, W, 3) and as float32 tensors in
[0, 1] of shape (1, H, W, 3) once prepared.
"""

import os

import numpy as np
from PIL import Image

from apps.core import images as core_images
from apps.core.errors import UserError

IMAGE_EXTENSIONS = core_images.IMAGE_EXTENSIONS
MIN_SIDE = 16  # the extractors pool four times: smaller images have no block5 features


def _sklearn(index):
    def load():
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _skimage(name):
    def load():
        from skimage import data

        return getattr(data, name)()

    return load


# name -> loader of a uint8 RGB (or grey) photograph
EMBEDDED = {
    "china": _sklearn(0),  # scikit-learn: a temple in China, 427x640
    "flower": _sklearn(1),  # scikit-learn: a dahlia, 427x640
    "astronaut": _skimage("astronaut"),  # scikit-image: Eileen Collins, 512x512
    "chelsea": _skimage("chelsea"),  # scikit-image: a cat, 300x451
    "coffee": _skimage("coffee"),  # scikit-image: a cup of coffee, 400x600
    "rocket": _skimage("rocket"),  # scikit-image: a rocket at launch, 427x640
    "hubble": _skimage("hubble_deep_field"),  # scikit-image: Hubble deep field, 872x1000
    "ihc": _skimage("immunohistochemistry"),  # scikit-image: stained tissue, 512x512
    "motorcycle": _skimage("stereo_motorcycle"),  # scikit-image: left view, 500x741
    "camera": _skimage("camera"),  # scikit-image: a cameraman (grey), 512x512
}


def embedded(name):
    """The embedded photograph `name` as uint8 (H, W, 3)."""
    image = EMBEDDED[name]()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    return as_rgb(np.asarray(image, np.uint8))


def as_rgb(image):
    """uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def named(path, field="--content"):
    """`path` if it names an image (a file or an embedded name); a UserError
    naming `field` when it is empty."""
    if not path:
        raise UserError(f"{field} is empty: give an image file or one of "
                        f"{', '.join(sorted(EMBEDDED))}")
    return path


def read_image(path, field="--content"):
    """A file path or an embedded name -> uint8 (H, W, 3); UserError naming `field`."""
    named(path, field)
    if not os.path.exists(path):
        if path in EMBEDDED:
            return embedded(path)
        raise UserError(f"{field}={path}: no such file (nor an embedded image: "
                        f"{', '.join(sorted(EMBEDDED))})")
    if os.path.isdir(path):
        raise UserError(f"{field}={path}: a folder; expected one image file")
    try:
        array = core_images.read_image(path, channels=3)
    except UserError as e:  # "<path>: not a readable image (...)"
        raise UserError(f"{field}={e}") from None
    return check_size(array, f"{field}={path}")


def check_size(image, what):
    check_sides(*image.shape[:2], what)
    return image


def check_sides(h, w, what):
    """A UserError for an image of a side under MIN_SIDE."""
    if min(h, w) < MIN_SIDE:
        raise UserError(f"{what}: the image is {w}x{h} pixels; expected at least "
                        f"{MIN_SIDE}x{MIN_SIDE}")


def fit_size(height, width, long_side, multiple=16):
    """(H, W) with the long side `long_side`, the aspect ratio kept, both sides
    rounded to a multiple of `multiple` (at least `multiple`)."""
    scale = long_side / max(height, width)
    return tuple(max(multiple, int(round(s * scale / multiple)) * multiple)
                 for s in (height, width))


def center_crop_to_aspect(image, height, width):
    """The largest central crop of `image` with the aspect ratio height:width."""
    h, w = image.shape[:2]
    if h * width > w * height:  # too tall
        new_h = max(1, round(w * height / width))
        top = (h - new_h) // 2
        return image[top:top + new_h]
    new_w = max(1, round(h * width / height))
    left = (w - new_w) // 2
    return image[:, left:left + new_w]


def resize(image, height, width):
    """uint8 (H, W, 3) -> uint8 (height, width, 3), antialiased."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC), np.uint8)


def content_and_style(content, style, long_side, keep_aspect=True):
    """uint8 content and style images at one size, for the optimisation method.

    The content image is resized so that its long side is `long_side` (the
    aspect ratio kept when `keep_aspect`, else square); the style image is
    centre-cropped to the same aspect ratio and resized to the same size, as
    the style cost compares Gram matrices of equally sized feature maps.
    """
    if keep_aspect:
        height, width = fit_size(*content.shape[:2], long_side)
    else:
        height = width = long_side
    content = resize(center_crop_to_aspect(content, height, width), height, width)
    style = resize(center_crop_to_aspect(style, height, width), height, width)
    return content, style


def to_float(image):
    """uint8 (H, W, 3) or (N, H, W, 3) -> float32 in [0, 1] with a batch axis."""
    image = np.asarray(image, np.float32) / 255.0
    return image[None] if image.ndim == 3 else image


def to_uint8(image):
    """Float in [0, 1] (any shape) -> uint8, rounded."""
    return (np.clip(np.asarray(image, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


def side_by_side(*images, gap=4):
    """uint8 (H, W, 3) images of one height, side by side with white gaps."""
    height = max(i.shape[0] for i in images)
    parts = []
    for i, image in enumerate(images):
        if image.shape[0] != height:
            width = max(1, round(image.shape[1] * height / image.shape[0]))
            image = resize(image, height, width)
        if i:
            parts.append(np.full((height, gap, 3), 255, np.uint8))
        parts.append(image)
    return np.concatenate(parts, axis=1)


def save_png(image, path):
    """Writes uint8 (H, W, 3) to `path` atomically (temp file, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    Image.fromarray(np.asarray(image, np.uint8)).save(tmp)
    os.replace(tmp, path)
    return path
