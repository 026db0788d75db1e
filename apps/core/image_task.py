"""A `Task` whose inputs are uint8 images, prepared and augmented one way.

Apps with image inputs (classification, face recognition, ...) subclass
`ImageTask`: images are held as uint8, prepared by apps.core.images.prepare_image
to config.data.image_size x image_size x config.data.channels in [0, 1], and
augmented in training by config.data.augment (flip, shift, rotation, color).
The same preparation runs in the exported signature.
"""

from apps.core import images as images_lib
from apps.core.task import Task


class ImageTask(Task):
    tflite = True  # a TensorFlow Lite export at the model's input size (apps.core.tflite)

    def prepare(self, images):
        """uint8 image(s) of any size and 1 or 3 channels -> the model's float input."""
        return images_lib.prepare_image(images, self.config.data.image_size,
                                        self.config.data.channels)

    def eval_example(self, image, target):
        return self.prepare(image), target

    def train_example(self, image, target, seed):
        a = self.config.data.augment
        image = images_lib.augment_image(self.prepare(image), seed, flip=a.flip, shift=a.shift,
                                         rotation=a.rotation, color=a.color)
        return image, target
