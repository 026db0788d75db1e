"""Synthetic faces: per-identity traits, per-image variation, vectorised NumPy.

No face data set can be downloaded here, so the embedded default draws one.
Every identity has its own traits, drawn once from the generator's seed:

    face shape      half-width, half-height, squareness of the jaw (a superellipse)
    skin tone       a colour along a light-to-dark skin axis, with a warm/cool tint
    hair            colour, volume, length down the sides, hairline height and curve,
                    a fringe, optionally a beard
    eyes            spacing, height, size, aspect, iris colour; eyebrow thickness,
                    height and slant
    nose            length and width
    mouth           width, lip thickness, height, lip colour
    marks           optionally glasses, optionally a mole at a fixed spot

and every image varies them as a camera and a face do:

    pose            in-plane rotation, translation, scale, yaw (the inner features
                    slide sideways and the far side narrows)
    expression      smile or frown, an open mouth, eye openness, raised brows
    lighting        overall gain, a directional gradient, a colour cast
    background      a random colour with a random gradient
    noise           Gaussian pixel noise

`variation` scales all per-image variation (0 = every image of a person is
the same picture). Rendering is a few dozen array operations over a whole
chunk of images at once: each part is a soft-edged implicit shape (an
ellipse or superellipse) evaluated on the pixel grid mapped into the face's
own frame, and the parts are painted back to front.
"""

import numpy as np

SKIN_LIGHT = np.array([0.96, 0.82, 0.70])
SKIN_DARK = np.array([0.36, 0.22, 0.14])
HAIR_COLOURS = np.array([
    [0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.45, 0.28, 0.14], [0.75, 0.58, 0.30],
    [0.55, 0.20, 0.08], [0.60, 0.60, 0.62], [0.92, 0.90, 0.85], [0.35, 0.33, 0.32]])
IRIS_COLOURS = np.array([
    [0.30, 0.18, 0.08], [0.15, 0.35, 0.70], [0.25, 0.50, 0.30], [0.45, 0.45, 0.50],
    [0.10, 0.08, 0.06]])


def identity_traits(num_identities, seed):
    """The traits of `num_identities` people, a dict of (num_identities, ...) arrays."""
    rng = np.random.default_rng([seed, 0])
    n = num_identities

    def u(low, high, *shape):
        return rng.uniform(low, high, (n, *shape))

    skin_t = u(0, 1)
    skin = SKIN_LIGHT + skin_t[:, None] * (SKIN_DARK - SKIN_LIGHT)
    skin = skin * (1 + u(-0.08, 0.08, 1) * np.array([1.0, 0.0, -1.0]))  # warm / cool
    hair = HAIR_COLOURS[rng.integers(0, len(HAIR_COLOURS), n)] * u(0.8, 1.2, 1) + u(-0.05, 0.05, 3)
    return {
        "face_w": u(0.48, 0.66),
        "face_h": u(0.62, 0.80),
        "jaw": u(1.7, 3.2),  # superellipse exponent: 2 = oval, larger = square
        "skin": np.clip(skin, 0, 1),
        "hair": np.clip(hair, 0, 1),
        "hair_volume": u(0.02, 0.20),
        "hair_length": u(-0.5, 0.6),  # where the side hair ends (face frame, down is +)
        "hairline": u(-0.62, -0.25),
        "hairline_curve": u(-0.5, 0.6),
        "fringe": u(-0.15, 0.15),  # the hairline's slant
        "beard": (rng.uniform(size=n) < 0.2) * u(0.5, 1.0),
        "eye_dx": u(0.17, 0.30),
        "eye_y": u(-0.22, -0.02),
        "eye_size": u(0.06, 0.11),
        "eye_aspect": u(0.35, 0.75),
        "iris": IRIS_COLOURS[rng.integers(0, len(IRIS_COLOURS), n)] + u(-0.05, 0.05, 3),
        "brow_gap": u(0.06, 0.16),
        "brow_thick": u(0.015, 0.05),
        "brow_slant": u(-0.35, 0.35),
        "nose_len": u(0.10, 0.28),
        "nose_w": u(0.04, 0.11),
        "mouth_y": u(0.28, 0.48),
        "mouth_w": u(0.10, 0.26),
        "lip": u(0.02, 0.06),
        "lip_colour": np.clip(np.array([0.70, 0.30, 0.30]) * u(0.6, 1.1, 1)
                              + u(-0.08, 0.08, 3), 0, 1),
        "glasses": (rng.uniform(size=n) < 0.2).astype(np.float64),
        "mole": (rng.uniform(size=n) < 0.35).astype(np.float64),
        "mole_xy": np.stack([u(-0.35, 0.35), u(-0.1, 0.45)], axis=-1),
    }


def image_variation(num_images, seed, variation=1.0):
    """Per-image pose, expression, lighting, background and noise parameters."""
    rng = np.random.default_rng([seed, 1])
    n, v = num_images, variation

    def s(scale, *shape):  # symmetric, scaled by `variation`
        return rng.uniform(-1, 1, (n, *shape)) * scale * v

    return {
        "angle": s(np.deg2rad(18)),
        "shift": s(0.14, 2),
        "scale": np.exp(s(0.15)),
        "yaw": s(0.5),
        "pitch": s(0.05),
        "smile": s(0.06),
        "mouth_open": np.clip(s(0.04), 0, None),
        "eye_open": 1 - np.clip(s(0.6), 0, None),
        "brow_raise": s(0.03),
        "gain": np.exp(s(0.25)),
        "light_dir": rng.uniform(0, 2 * np.pi, n),
        "light": np.abs(s(0.45)),
        "cast": 1 + s(0.10, 3),
        "background": np.clip(0.5 + (rng.uniform(0, 1, (n, 3)) - 0.5) * v, 0, 1),
        "bg_dir": rng.uniform(0, 2 * np.pi, n),
        "bg_slope": rng.uniform(0, 0.6, n) * v,
        "noise": rng.uniform(0.01, 0.05, n) * v,
    }


def _soft(signed, softness):
    """Soft inside-mask from a signed value (> 0 inside); edges `softness` wide."""
    return 1 / (1 + np.exp(-np.clip(4 * signed / softness, -30, 30)))


def _ellipse(x, y, cx, cy, rx, ry, softness, power=2.0):
    """Soft mask of the (super)ellipse |(x-cx)/rx|^p + |(y-cy)/ry|^p <= 1."""
    r = (np.abs((x - cx) / rx) ** power + np.abs((y - cy) / ry) ** power) ** (1 / power)
    return _soft(1 - r, softness / np.minimum(rx, ry))


def _paint(image, mask, colour):
    mask = mask[..., None]
    return image * (1 - mask) + mask * np.asarray(colour, image.dtype)[:, None, None, :]


def render(traits, var, size, noise_seed=0):
    """Renders one image per row of `var` for the people in `traits` (same rows).

    Returns float32 images (N, size, size, 3) in [0, 1].
    """
    t = {k: np.asarray(a, np.float32) for k, a in traits.items()}
    v = {k: np.asarray(a, np.float32) for k, a in var.items()}

    def c(a):  # (N,) -> broadcast over the pixel grid
        return a[:, None, None]

    n = len(v["angle"])
    grid = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    gx, gy = gx[None], gy[None]
    px = 2.0 / size  # one pixel in image units
    # The pixel grid in the face's own frame: undo translation, scale, rotation.
    x0 = (gx - c(v["shift"][:, 0])) / c(v["scale"])
    y0 = (gy - c(v["shift"][:, 1])) / c(v["scale"])
    cos, sin = c(np.cos(v["angle"])), c(np.sin(v["angle"]))
    x = cos * x0 + sin * y0
    y = -sin * x0 + cos * y0 - c(v["pitch"])
    soft = px / c(v["scale"])

    yaw = c(v["yaw"])
    # Yaw: the outline narrows on the far side; inner features slide towards it.
    xo = x / (1 - 0.25 * np.abs(yaw) * (np.sign(x) == np.sign(yaw)))
    xf = x - 0.12 * yaw

    # Background: a colour with a linear gradient.
    bg_grad = c(v["bg_slope"]) * (c(np.cos(v["bg_dir"])) * gx + c(np.sin(v["bg_dir"])) * gy) / 2
    image = np.clip(v["background"][:, None, None, :] + bg_grad[..., None], 0, 1)
    image = np.broadcast_to(image, (n, size, size, 3)).copy()

    fw, fh = c(t["face_w"]), c(t["face_h"])
    # Hair behind the head: a larger ellipse, cut off below `hair_length`.
    vol = c(t["hair_volume"])
    hair_back = _ellipse(xo, y, 0, -0.06, fw + vol + 0.04, fh + vol * 0.7, soft)
    hair_back = hair_back * _soft(c(t["hair_length"]) - y, soft)
    image = _paint(image, hair_back, t["hair"])
    # Neck.
    neck = _ellipse(xo, y, 0, fh + 0.15, fw * 0.5, 0.35, soft) * _soft(y - 0.2, soft)
    image = _paint(image, neck, t["skin"] * 0.85)
    # The face: a superellipse.
    face = _ellipse(xo, y, 0, 0, fw, fh, soft, power=c(t["jaw"]))
    image = _paint(image, face, t["skin"])
    # Hairline: hair above a curve inside the face.
    line = c(t["hairline"]) + c(t["hairline_curve"]) * (xo / fw) ** 2 * 0.25 + c(t["fringe"]) * xo
    image = _paint(image, face * _soft(line - y, soft), t["hair"])
    # Beard: hair over the chin below the mouth line.
    beard = face * _soft(y - (c(t["mouth_y"]) - 0.05), soft) * c(t["beard"])
    image = _paint(image, beard, t["hair"] * 0.9)

    eye_y = c(t["eye_y"])
    ex, er = c(t["eye_dx"]), c(t["eye_size"])
    ey_r = er * c(t["eye_aspect"]) * c(v["eye_open"])
    brow_y = eye_y - ey_r - c(t["brow_gap"]) - c(v["brow_raise"])
    for side in (-1, 1):
        cx = side * ex
        # Eyebrow: a slanted bar above the eye.
        slant = c(t["brow_slant"]) * side * (xf - cx)
        brow = _ellipse(xf, y - slant, cx, brow_y, er * 1.3, c(t["brow_thick"]), soft)
        image = _paint(image, brow, t["hair"] * 0.8)
        white = _ellipse(xf, y, cx, eye_y, er, np.maximum(ey_r, 0.004), soft)
        image = _paint(image, white, np.full((n, 3), 0.95))
        iris = _ellipse(xf, y, cx + 0.02 * yaw, eye_y, er * 0.5, er * 0.5, soft) * white
        image = _paint(image, iris, t["iris"])
        pupil = _ellipse(xf, y, cx + 0.02 * yaw, eye_y, er * 0.22, er * 0.22, soft) * white
        image = _paint(image, pupil, np.zeros((n, 3)))
        # Glasses: a dark ring around each eye and a bridge.
        ring_out = _ellipse(xf, y, cx, eye_y, er * 1.6, er * 1.3, soft)
        ring_in = _ellipse(xf, y, cx, eye_y, er * 1.6 - 0.03, er * 1.3 - 0.03, soft)
        image = _paint(image, (ring_out - ring_in).clip(0, 1) * c(t["glasses"]),
                       np.full((n, 3), 0.1))
    bridge = (_ellipse(xf, y, 0, eye_y, ex - er * 1.5, 0.012, soft)) * c(t["glasses"])
    image = _paint(image, bridge, np.full((n, 3), 0.1))

    # Nose: a darker wedge below the eyes.
    nose_top, nl, nw = eye_y + 0.02, c(t["nose_len"]), c(t["nose_w"])
    depth = np.clip((y - nose_top) / nl, 0, 1)
    nose = _soft(nw * depth - np.abs(xf - 0.05 * yaw), soft) * _soft(nose_top + nl - y, soft)
    nose = nose * _soft(y - nose_top, soft)
    image = _paint(image, nose * 0.7, t["skin"] * 0.65)

    # Mouth: lips bent by the smile, dark inside when open.
    mw = c(t["mouth_w"])
    bend = c(v["smile"]) * ((xf / mw) ** 2 - 1)
    my = c(t["mouth_y"]) - bend
    lips = _ellipse(xf, y, 0, my, mw, c(t["lip"]) + c(v["mouth_open"]), soft)
    image = _paint(image, lips * face, t["lip_colour"])
    inside = _ellipse(xf, y, 0, my, mw * 0.8, c(v["mouth_open"]) + 1e-3, soft)
    image = _paint(image, inside * face, np.full((n, 3), 0.15))

    # Mole.
    mole = _ellipse(xf, y, c(t["mole_xy"][:, 0]), c(t["mole_xy"][:, 1]), 0.035, 0.035, soft)
    image = _paint(image, mole * face * c(t["mole"]), t["skin"] * 0.35)

    # Lighting: a directional gradient, an overall gain and a colour cast.
    light = 1 + c(v["light"]) * (c(np.cos(v["light_dir"])) * gx + c(np.sin(v["light_dir"])) * gy)
    image = image * (light * c(v["gain"]))[..., None] * v["cast"][:, None, None, :]
    noise = np.random.default_rng(noise_seed).standard_normal((n, size, size, 3), np.float32)
    image = image + noise * v["noise"][:, None, None, None]
    return np.clip(image, 0, 1).astype(np.float32)


def faces(num_identities, images_per_identity, size=32, seed=0, variation=1.0, chunk=1024):
    """`images_per_identity` uint8 images of each of `num_identities` people.

    Returns (images (N, size, size, 3) uint8, labels (N,) int64), identity-major
    (the images of person 0 first). Deterministic in `seed`.
    """
    traits = identity_traits(num_identities, seed)
    labels = np.repeat(np.arange(num_identities, dtype=np.int64), images_per_identity)
    var = image_variation(len(labels), seed, variation)
    out = np.empty((len(labels), size, size, 3), np.uint8)
    for start in range(0, len(labels), chunk):
        rows = slice(start, start + chunk)
        people = labels[rows]
        picture = render({k: a[people] for k, a in traits.items()},
                         {k: a[rows] for k, a in var.items()}, size,
                         noise_seed=[seed, 2, start])
        out[rows] = (picture * 255 + 0.5).astype(np.uint8)
    return out, labels
