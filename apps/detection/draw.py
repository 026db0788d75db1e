"""Boxes drawn on images, for TensorBoard and --mode=predict."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190)]


def draw(image, boxes, classes, class_names, scores=None, scale=1):
    """uint8 image (H, W, 1 or 3) with corner boxes (pixels of the image) -> RGB uint8.

    `scale` enlarges the picture (nearest neighbour) before drawing, so labels
    stay readable on small images.
    """
    picture = Image.fromarray(np.asarray(image).squeeze(-1) if np.asarray(image).shape[-1] == 1
                              else np.asarray(image)).convert("RGB")
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    pen = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for i, (box, c) in enumerate(zip(np.asarray(boxes), np.asarray(classes), strict=True)):
        if c < 0:
            continue
        color = PALETTE[int(c) % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=color, width=2)
        label = class_names[int(c)] + ("" if scores is None else f" {float(scores[i]):.2f}")
        left, top, right, bottom = pen.textbbox((x1, y1), label, font=font)
        y = max(0.0, y1 - (bottom - top) - 2)
        pen.rectangle([x1, y, x1 + right - left + 2, y + bottom - top + 2], fill=color)
        pen.text((x1 + 1, y), label, fill=(0, 0, 0), font=font)
    return np.asarray(picture)
