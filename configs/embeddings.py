"""Word embeddings: word2vec (skip-gram, CBOW) with negative sampling, and GloVe.

    python -m apps.embeddings --config=configs/embeddings.py --workdir=runs/embeddings
    python -m apps.embeddings --config=configs/embeddings.py:tiny --workdir=/tmp/emb

Variants (after the colon): "" (default: skip-gram on the Lee news corpus
shipped with gensim, a few minutes on a 2-core CPU), "cbow", "glove" (the
same corpus), "tiny" (seconds; what the tests use), "text" (set
--config.data.path to a text file or folder, e.g. text8), "tfds" (set
--config.data.name and --config.data.data_dir). GloVe on your own text:
":glove" with --config.data.source=text --config.data.path=... The corpus
is kept on disk in the workdir whatever its size (apps/embeddings/README.md).

config.train.batch_size counts chunks of the corpus (word2vec: about
config.word2vec.chunk_words words each) or of the co-occurrence table
(GloVe: config.glove.chunk_pairs pairs each); the loss of a chunk is the sum
over its pairs.
"""

import ml_collections

from apps.core.config import (
    Rule,
    boolean,
    check_source_fields,
    common_config,
    int_in,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
    probability,
)
from apps.core.errors import UserError
from apps.core.optim import optimizer_config
from apps.embeddings import debias
from apps.embeddings.model import METHODS


def _pairs(field):
    """The rule of a field of 'word:word' pairs, as debias.parse_pairs reads them."""
    def test(text):
        try:
            return bool(debias.parse_pairs(text, field))
        except (UserError, AttributeError):
            return False

    return Rule(test, "comma-separated pairs 'word:word' (at least one)")


# What each field must hold (apps.core.config.check).
RULES = {
    "method": one_of(*METHODS),
    "xla": Rule(lambda v: v is False, "false (word2vec compiles its own step's dense "
                "parts with XLA, apps/embeddings/fused.py; GloVe's are sparse)"),
    "mixed_precision": Rule(lambda v: v is False, "false (embeddings train in float32)"),
    "data.source": one_of("embedded", "text", "tfds"),
    "data.min_count": positive_int,
    "data.max_vocab": non_negative_int,
    "data.keep_punctuation": boolean,
    "data.max_sentence_words": positive_int,
    "data.max_words": non_negative_int,
    "data.cache": one_of("auto", "none", "memory"),
    "model.dim": positive_int,
    "word2vec.window": int_in(1, 50),
    "word2vec.negatives": int_in(1, 100),
    "word2vec.sample": probability,
    "word2vec.chunk_words": positive_int,
    "word2vec.share_negatives": boolean,
    "word2vec.negatives_per_block": non_negative_int,
    "glove.window": int_in(1, 100),
    "glove.x_max": positive_float,
    "glove.alpha": positive_float,
    "glove.chunk_pairs": positive_int,
    "glove.block_tokens": positive_int,
    "glove.memory_pairs": positive_int,
    "eval.each_epoch_analogies": boolean,
    "export.top_k": int_in(1, 1000),
    "export.projector_words": non_negative_int,
    "debias.method": one_of("pca", "difference"),
    "debias.definitional": _pairs("config.debias.definitional"),
    "debias.equalize": _pairs("config.debias.equalize"),
}


def check(config):
    """The checks across fields."""
    check_source_fields(config.data, {"path": ("text",), "name": ("tfds",), "data_dir": ("tfds",)})


def get_config(variant=""):
    config = common_config("embeddings")
    config.method = "skipgram"  # skipgram | cbow | glove
    config.xla = False  # word2vec's step compiles its dense parts itself (RULES)
    # --mode=tune's default search (apps.core.tune): the learning rate, the
    # context window and the negatives per word.
    config.tune.space = ("optimizer.learning_rate = log_uniform(1e-2, 1); "
                         "word2vec.window = int(2, 10); word2vec.negatives = int(2, 15)")

    config.data = ml_collections.ConfigDict()
    config.data.source = "embedded"  # embedded (Lee corpus) | text | tfds
    config.data.path = ""  # text file or folder (source=text; '' = the Lee corpus for embedded)
    config.data.name = ""  # TFDS name (source=tfds)
    config.data.data_dir = ""  # TFDS data_dir
    config.data.split = "train"  # TFDS split
    config.data.text_key = "text"  # TFDS feature holding the text
    config.data.min_count = 3
    config.data.max_vocab = 0  # keep the N most frequent words; 0 = all
    config.data.keep_punctuation = False
    config.data.max_sentence_words = 10_000  # longer lines are cut (text8 is one line)
    config.data.max_words = 0  # read only the first N words; 0 = all
    # The corpus is always read once and kept on disk as word ids; "memory" also
    # holds the training chunks in memory (the embedded 60,000 words: 0.5 MB, and
    # the input pipeline some 20% lighter), "none" reads each chunk from disk as
    # batches need it (memory does not grow with the corpus); "auto": memory for
    # the embedded corpus, none for text and tfds.
    config.data.cache = "auto"

    config.model = ml_collections.ConfigDict()
    config.model.dim = 100

    config.word2vec = ml_collections.ConfigDict()
    config.word2vec.window = 5
    config.word2vec.negatives = 5
    config.word2vec.sample = 1e-3  # subsampling threshold s
    config.word2vec.chunk_words = 4096  # words per training example (chunk)
    # Skip-gram: k negatives per centre word, shared by its pairs (False: k per pair).
    config.word2vec.share_negatives = True
    # N > 0: the centre words of each block of 32 consecutive ones share N draws,
    # each weighted k / N (the same expectation as k each, a fraction of the work;
    # apps/embeddings/fused.py); 0: each centre word draws its own k.
    config.word2vec.negatives_per_block = 16

    config.glove = ml_collections.ConfigDict()
    config.glove.window = 10
    config.glove.x_max = 100.0
    config.glove.alpha = 0.75
    config.glove.chunk_pairs = 4096
    # The co-occurrence table is built on disk (apps/embeddings/cooccurrence.py),
    # so its size is bounded by the disk (16 bytes a distinct X_ij), not by memory.
    config.glove.block_tokens = 100_000  # corpus positions counted at a time
    # (i, j) pairs held in memory at once, about 50 bytes each at the peak of a
    # sort; more are spilled to disk as sorted runs and merged.
    config.glove.memory_pairs = 4_000_000

    # The project's AdaGrad (row by row, apps/embeddings/sparse.py), decaying linearly
    # as word2vec's rate does; plain gradient descent on the summed loss of a batch
    # diverges on the most frequent words. A step takes 2 chunks of about 4,000 words,
    # which spreads each step's fixed cost over many words, and each chunk's in the
    # input pipeline (CBOW: about 1.1x the words/sec of 8 chunks of 1,000 a step,
    # bench/embeddings.py). AdaGrad then moves a word about half as far per
    # 4 merged steps (4x the gradient over 2x the root of its summed squares), so the
    # rate is doubled from the 0.15 that suits 2,000-word steps: the same quality.
    config.optimizer = optimizer_config("adagrad", learning_rate=0.3, schedule="linear")

    config.train.batch_size = 2
    config.train.epochs = 20
    config.train.checkpoint_every = 0  # epoch ends only
    config.train.log_every = 10

    config.eval = ml_collections.ConfigDict()
    config.eval.ws353 = ""  # '' = WordSim-353 from gensim's test data
    config.eval.simlex999 = ""  # '' = SimLex-999 from gensim's test data
    config.eval.analogies = ""  # '' = questions-words.txt from gensim's test data
    config.eval.each_epoch_analogies = False  # analogies at the end only (they cost more)

    # config.export (common_config) also holds tflite, off: this app has no TFLite export.
    config.export.top_k = 10  # neighbours returned by the SavedModel and --mode=query
    config.export.projector_words = 10_000  # most frequent words in the projector; 0 = all

    config.debias = ml_collections.ConfigDict()
    config.debias.method = "pca"  # pca | difference
    config.debias.definitional = debias.DEFINITIONAL
    config.debias.equalize = debias.EQUALIZE
    config.debias.gender_specific = debias.GENDER_SPECIFIC
    config.debias.report = debias.REPORT

    # The diagnosis at the end of a run (apps.core.diagnosis) on the training loss:
    # the evaluation sets (WordSim-353, ...) are no split of the corpus, so it
    # covers a sample of the training chunks and any held-out train-dev chunks.
    config.diagnosis.metric = "loss"
    config.diagnosis.human_level_error = None  # none for a loss
    # The embedded corpus is small (a few dozen chunks, a multiple of the batch so
    # every word is a centre once an epoch; bench compares with gensim on all
    # of it): none held out. On a corpus of your own, 0.05 gives the variance.
    config.diagnosis.train_dev_fraction = 0.0

    if variant == "tiny":
        config.data.max_words = 6000
        config.data.cache = "none"  # the tests train on chunks read from disk
        config.data.min_count = 2
        config.model.dim = 16
        config.word2vec.chunk_words = 256
        config.train.batch_size = 4
        config.train.epochs = 2
        config.train.checkpoint_every = 3
        config.train.log_every = 2
        config.export.projector_words = 100
    elif variant == "cbow":
        config.method = "cbow"
        # 4 chunks a step (13,500 words on Lee), the fixed cost of a step spread
        # over 1.75 times the words of the 2 chunks before, and 5 shared
        # negatives a block of 32 centres (CBOW's work a centre is mostly its
        # negatives' products): on Lee over 8 paired seeds, 1.12x gensim's
        # words/s at WordSim-353 0.17 (gensim's: -0.01); 2 chunks and 16
        # negatives a block at 0.8: 0.74-0.87x at 0.18 (bench/embeddings.py).
        config.train.batch_size = 4
        config.word2vec.negatives_per_block = 5
        config.optimizer.learning_rate = 0.4
    elif variant == "glove":
        config.method = "glove"
        config.optimizer = optimizer_config("adagrad", learning_rate=0.05)
        config.train.batch_size = 4
        config.train.epochs = 50
    elif variant == "text":
        config.data.source = "text"
        config.data.min_count = 5
        config.train.epochs = 5
        config.train.checkpoint_every = 500
    elif variant == "tfds":
        config.data.source = "tfds"
        config.data.min_count = 5
        config.train.epochs = 5
        config.train.checkpoint_every = 500
    elif variant:
        raise ValueError(f"unknown variant {variant!r}: '', cbow, glove, tiny, text, tfds")
    return config
