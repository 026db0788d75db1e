"""The segmentation config: every variant passes the rules; bad values name their field."""

import pytest

from apps.core import config as config_lib
from apps.core.errors import UserError
from configs.segmentation import get_config


@pytest.mark.parametrize("variant", ["", "tiny", "pets", "carla", "folder"])
def test_every_variant_passes_the_rules(variant):
    config_lib.check_app(get_config(variant))


@pytest.mark.parametrize("field, value, expected", [
    ("data.image_size", (4, 64), "config.data.image_size = (4, 64): expected (height, width)"),
    ("data.image_size", (64,), "config.data.image_size"),
    ("model.depth", 9, "config.model.depth = 9: expected an integer in [1, 6]"),
    ("loss.class_weights", "inverse", "config.loss.class_weights = 'inverse': expected one of"),
    ("loss.dice_weight", -1.0, "config.loss.dice_weight = -1.0"),
    ("data.synthetic.object_size", (0.6, 0.4), "config.data.synthetic.object_size"),
    ("data.source", "csv", "config.data.source = 'csv'"),
])
def test_bad_values_name_the_field(field, value, expected):
    config = get_config()
    section, name = field.rsplit(".", 1)
    config_lib.lookup(config, section)[name] = value
    with pytest.raises(UserError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        config_lib.check_app(config)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant 'cityscapes'"):
        get_config("cityscapes")
