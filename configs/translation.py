"""Sequence-to-sequence translation: the attention model and the Transformer.

    python -m apps.translation --config=configs/translation.py --workdir=runs/translation
    python -m apps.translation --config=configs/translation.py:transformer \
        --workdir=runs/translation_transformer
    python -m apps.translation --config=configs/translation.py --workdir=runs/translation \
        --mode=predict --input="saturday 9 may 2018"
    python -m apps.translation --config=configs/translation.py --workdir=runs/translation \
        --mode=error_analysis

Variants (after the colon): "" (default: the attention model on the embedded
dates -> ISO 8601 task), "transformer" (the Transformer on the same data,
warm-up then inverse-square-root learning rate), "tiny" (seconds; what the
tests use), "tsv" (set --config.data.path to a tab-separated pair file, e.g.
manythings.org's fra.txt; WordPiece subwords), "parallel" (the same on two
files of one sentence per line: --config.data.path=train.en
--config.data.target_path=train.de, as WMT ships them), "tfds" (set
--config.data.name, e.g. ted_hrlr_translate/pt_to_en, and
--config.data.data_dir). Pick the model of any variant with
--config.model.name=attention|transformer.
"""

import ml_collections

from apps.core.config import (
    Rule,
    boolean,
    check_source_fields,
    common_config,
    fractions_summing_to_one,
    int_in,
    non_negative_int,
    one_of,
    positive_int,
    probability,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config
from apps.translation.bleu import TOKENIZERS
from apps.translation.model import NAMES

# What each field must hold (apps.core.config.check).
RULES = {
    "data.source": one_of("dates", "tsv", "parallel", "tfds"),
    "data.cache": one_of("none", "memory"),
    "data.reverse": boolean,
    "data.split": fractions_summing_to_one,
    "data.max_examples": non_negative_int,
    "data.tokenizer": one_of("char", "wordpiece"),
    "data.vocab_size": int_in(8, 1_000_000),
    "data.lowercase": boolean,
    "data.max_source_length": int_in(1, 4096),
    "data.max_target_length": int_in(2, 4096),
    "data.dates.train": positive_int,
    "data.dates.val": positive_int,
    "data.dates.test": positive_int,
    "model.name": one_of(*NAMES),
    "model.dropout": probability,
    "model.label_smoothing": probability,
    "model.rnn": one_of("lstm", "gru"),
    "model.embedding_dim": int_in(1, 8192),
    "model.encoder_units": int_in(1, 8192),
    "model.decoder_units": int_in(1, 8192),
    "model.attention_units": int_in(1, 8192),
    "model.d_model": int_in(2, 8192),
    "model.num_heads": int_in(1, 256),
    "model.ff_dim": int_in(1, 65536),
    "model.num_layers": int_in(1, 64),
    "decode.beam_size": int_in(1, 64),
    "decode.alpha": Rule(lambda v: 0 <= v <= 2, "a number in [0, 2]"),
    "decode.max_length": int_in(0, 4096),
    "eval.batch_size": positive_int,
    "eval.bleu_tokenize": one_of(*TOKENIZERS),
    "eval.attention_maps": int_in(0, 32),
    "eval.shown_errors": non_negative_int,
}


def check(config):
    """The check across fields: the Transformer splits d_model among its heads."""
    check_source_fields(config.data, {"path": ("tsv", "parallel"), "target_path": ("parallel",),
                                      "name": ("tfds",), "data_dir": ("tfds",)})
    m = config.model
    if m.name == "transformer" and m.d_model % m.num_heads:
        raise UserError(f"config.model.d_model = {m.d_model} must be a multiple of "
                        f"config.model.num_heads = {m.num_heads}")


def get_config(variant=""):
    config = common_config("translation")
    # --mode=tune's default search (apps.core.tune): Adam's learning rate and
    # beta_1, and dropout.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-4, 1e-1); "
                         "optimizer.beta_1 = one_minus_log(0.8, 0.99); "
                         "model.dropout = uniform(0, 0.3)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "dates"  # dates | tsv | parallel | tfds
    config.data.path = ""  # tsv: source<TAB>target per line; parallel: the source sentences
    config.data.target_path = ""  # parallel: their translations, line by line
    # Files (tsv, parallel) are read as training goes; "memory" reads them all once.
    config.data.cache = "none"  # none | memory
    config.data.reverse = False  # translate the target side (second column) into the source
    config.data.name = ""  # tfds: e.g. ted_hrlr_translate/pt_to_en
    config.data.data_dir = ""  # tfds data_dir ('' = TFDS's default)
    config.data.split = (0.8, 0.1, 0.1)  # tsv, parallel: train, val, test
    config.data.max_examples = 0  # per split; 0 = all
    config.data.tokenizer = "char"  # char | wordpiece
    config.data.vocab_size = 8000  # wordpiece: per language
    config.data.lowercase = True
    config.data.max_source_length = 40  # tokens; longer pairs are counted and left out
    config.data.max_target_length = 12  # tokens, [END] included
    config.data.dates = ml_collections.ConfigDict()
    config.data.dates.train = 20000  # examples (disjoint dates between the splits)
    config.data.dates.val = 1000
    config.data.dates.test = 2000

    config.model = ml_collections.ConfigDict()
    config.model.name = "attention"  # attention | transformer
    # The attention model's recurrent step is many small ops, which XLA fuses: faster
    # with XLA on a CPU too (bench/RESULTS.md); the Transformer's is not (_transformer).
    config.xla_on_cpu = True
    config.model.dropout = 0.0
    config.model.label_smoothing = 0.0
    # attention model (the course's date model: Bi-LSTM 32, post-attention LSTM 64)
    config.model.rnn = "lstm"  # lstm | gru
    config.model.embedding_dim = 32
    config.model.encoder_units = 32  # per direction
    config.model.decoder_units = 64
    config.model.attention_units = 32
    # transformer
    config.model.d_model = 64
    config.model.num_heads = 4
    config.model.ff_dim = 128
    config.model.num_layers = 2

    config.optimizer = optimizer_config("adam", learning_rate=3e-3, schedule="warmup_cosine")
    config.optimizer.warmup_epochs = 0.5
    config.optimizer.clipnorm = 1.0

    config.train.batch_size = 64
    config.train.epochs = 8
    config.train.checkpoint_every = 200

    config.decode = ml_collections.ConfigDict()
    config.decode.beam_size = 3
    config.decode.alpha = 0.7  # length normalisation (1 / T_y^alpha) * sum log P
    config.decode.max_length = 0  # output tokens; 0 = config.data.max_target_length

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 256
    config.eval.bleu_tokenize = "13a"  # sacrebleu tokenizer: 13a | char | intl | none
    config.eval.attention_maps = 4  # validation examples drawn in TensorBoard
    config.eval.shown_errors = 10  # error_analysis: wrong translations printed

    # The diagnosis at the end of a run (apps.core.diagnosis): the error is
    # 1 - exact match (a whole output right or wrong).
    config.diagnosis.metric = "exact_match"
    config.diagnosis.metric_is_error = False
    # Dates: every source has exactly one reading (apps/translation/dates.py), so 0.
    config.diagnosis.human_level_error = 0.0

    if variant == "transformer":
        _transformer(config)
    elif variant == "tiny":
        config.data.dates.train = 128
        config.data.dates.val = 16
        config.data.dates.test = 32
        config.diagnosis.train_dev_fraction = 0.0  # too few dates to hold any out
        config.model.embedding_dim = 8
        config.model.encoder_units = 8
        config.model.decoder_units = 16
        config.model.attention_units = 8
        config.model.d_model = 16
        config.model.num_heads = 2
        config.model.ff_dim = 32
        config.model.num_layers = 1
        config.train.batch_size = 32
        config.train.epochs = 2  # 4 steps each
        config.train.checkpoint_every = 2
        config.train.log_every = 2
        config.optimizer.warmup_epochs = 0.0
        config.optimizer.schedule = "constant"
        config.optimizer.learning_rate = 1e-2
        config.eval.attention_maps = 1
    elif variant in ("tsv", "parallel", "tfds"):
        _transformer(config)
        config.diagnosis.human_level_error = None  # people's translations differ: set it
        config.data.source = variant
        config.data.tokenizer = "wordpiece"
        config.data.max_source_length = 40
        config.data.max_target_length = 40
        config.model.d_model = 256
        config.model.num_heads = 8
        config.model.ff_dim = 1024
        config.model.num_layers = 4
        config.model.dropout = 0.1
        config.model.label_smoothing = 0.1
        config.optimizer.warmup_epochs = 1.0
        config.train.batch_size = 64
        config.train.epochs = 20
        config.train.checkpoint_every = 1000
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', transformer, tiny, tsv, parallel, "
                         "tfds")
    return config


def _transformer(config):
    config.model.name = "transformer"
    config.xla_on_cpu = False
    config.model.dropout = 0.1
    config.optimizer = optimizer_config("adam", learning_rate=2e-3, schedule="inverse_sqrt")
    config.optimizer.warmup_epochs = 1.0
    config.optimizer.clipnorm = 1.0
