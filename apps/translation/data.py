"""Translation data: the embedded dates, parallel text from files, or TFDS.

    config.data.source = "dates"     human-readable dates -> ISO 8601, generated
                                     (apps.translation.dates), character level
                       = "tsv"       config.data.path: one pair per line,
                                     "source<TAB>target[<TAB>anything]" (the Anki /
                                     manythings.org format of the Keras and
                                     TensorFlow NMT tutorials)
                       = "parallel"  config.data.path and config.data.target_path:
                                     one sentence per line in each, line i of one
                                     translating line i of the other (WMT's
                                     train.en / train.de)
                       = "tfds"      config.data.name (e.g. ted_hrlr_translate/pt_to_en),
                                     prepared in config.data.data_dir; its own
                                     train / validation / test splits

config.data.reverse swaps source and target. Text is stripped (and
lower-cased if config.data.lowercase) and tokenized by config.data.tokenizer
("char" or "wordpiece", apps.translation.vocab) with vocabularies learned on
the training split. Every split becomes

    inputs  = (source_ids (N, S), decoder_input_ids (N, T))   decoder inputs = [START] y
    targets = target_ids (N, T)                                targets = y [END]

padded with 0: teacher forcing feeds the target shifted right by one. Lines
that are malformed (fewer than two tab-separated fields, not UTF-8), empty
(a side with no text) or over-long (more than config.data.max_source_length
source tokens or config.data.max_target_length target tokens with [END]) are
counted and reported, then left out.

The dates and TFDS are held in memory as arrays. Files are streamed
(apps.translation.pairs): the lines are indexed in one pass (their byte
offsets, 8 bytes a pair, 16 with two parallel files, and 8 more for each
example's row in its split's columns), split into train / val
/ test by a seeded permutation of that index, the vocabularies learned in a
pass over the training lines, the token counts measured in a pass over the
lines of the splits (for the over-long rule and the widths S and T), and the
splits hold columns that read and encode a pair when a batch needs it: the
same arrays, row for row, as the text encoded whole (config.data.cache =
"memory" reads them all into memory once instead).
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from apps.core.data import MissingSplit, Split, cached, graph_code, load_tfds
from apps.core.errors import UserError
from apps.core.task import Data
from apps.core.text import utf8_lines
from apps.translation import dates as dates_lib
from apps.translation import pairs as pairs_lib
from apps.translation import vocab as vocab_lib
from apps.translation.vocab import BOS, EOS, PAD, normalize

SPLITS = ("train", "val", "test")

#: the sources read from files, streamed
FILE_SOURCES = ("tsv", "parallel")


def load(config):
    """Returns (Data, source_vocab, target_vocab, report) for config.data.

    `report` counts what was left out: {split: {"malformed", "empty",
    "over_long", "kept"}}, and for files also {"file": {"malformed",
    "empty"}}, the lines left out before the split (logged when indexed).
    """
    if config.data.source in FILE_SOURCES:
        return _streamed(config)
    d = config.data
    if d.source == "dates":
        sizes = (d.dates.train, d.dates.val, d.dates.test)
        try:
            texts = dict(zip(SPLITS, dates_lib.generate(sizes, config.seed), strict=True))
        except ValueError as e:
            raise UserError(f"config.data.dates.val + test: {e}") from None
        report = {s: {"malformed": 0, "empty": 0} for s in SPLITS}
    else:
        texts, report = _tfds(config)
    if d.max_examples:
        texts = {s: (src[:d.max_examples], tgt[:d.max_examples])
                 for s, (src, tgt) in texts.items()}
    texts = {s: (vocab_lib.normalize_texts(src, d.lowercase),
                 vocab_lib.normalize_texts(tgt, d.lowercase)) for s, (src, tgt) in texts.items()}
    for s, (src, tgt) in texts.items():  # empty after normalisation (e.g. only spaces)
        keep = [i for i, (a, b) in enumerate(zip(src, tgt, strict=True)) if a and b]
        report[s]["empty"] = report[s].get("empty", 0) + len(src) - len(keep)
        texts[s] = ([src[i] for i in keep], [tgt[i] for i in keep])

    train = tf.data.Dataset.from_tensor_slices(
        (tf.constant(texts["train"][0], tf.string), tf.constant(texts["train"][1], tf.string)))
    source_vocab, target_vocab = fit_vocabs(config, train.batch(1024))
    splits = {}
    for s in SPLITS:
        src_ids = source_vocab.encode(texts[s][0])
        tgt_ids = target_vocab.encode(texts[s][1])
        keep = [i for i, (a, b) in enumerate(zip(src_ids, tgt_ids, strict=True))
                if len(a) <= d.max_source_length and len(b) + 1 <= d.max_target_length]
        report[s]["over_long"] = len(src_ids) - len(keep)
        report[s]["kept"] = len(keep)
        splits[s] = ([src_ids[i] for i in keep], [tgt_ids[i] for i in keep])
    _check_kept(report, d)
    source_width = max(len(x) for s in SPLITS for x in splits[s][0])
    target_width = max(len(y) for s in SPLITS for y in splits[s][1]) + 1
    data = Data(*(make_split(*splits[s], source_width, target_width) for s in SPLITS))
    return data, source_vocab, target_vocab, report


def fit_vocabs(config, pairs):
    """(source, target) vocabularies learned on `pairs`, a tf.data.Dataset of
    (sources, targets) batches of normalised, non-empty texts: the character
    vocabularies in one pass, WordPiece in one pass each."""
    d = config.data
    if d.tokenizer == "char":
        points = (np.zeros(0, np.int32), np.zeros(0, np.int32))
        for batch in pairs:
            points = tuple(np.union1d(seen, vocab_lib.CharVocab.code_points(texts))
                           for seen, texts in zip(points, batch, strict=True))
        return tuple(vocab_lib.CharVocab.from_code_points(p) for p in points)
    return (vocab_lib.WordPieceVocab.fit_batches(pairs.map(graph_code(lambda s, t: s)),
                                                 d.vocab_size, d.lowercase),
            vocab_lib.WordPieceVocab.fit_batches(pairs.map(graph_code(lambda s, t: t)),
                                                 d.vocab_size, d.lowercase))


def make_split(source_ids, target_ids, source_width, target_width):
    """Padded arrays with the teacher-forcing shift (see the module docstring)."""
    n = len(source_ids)
    src = np.full((n, source_width), PAD, np.int32)
    dec = np.full((n, target_width), PAD, np.int32)
    tgt = np.full((n, target_width), PAD, np.int32)
    for i, (x, y) in enumerate(zip(source_ids, target_ids, strict=True)):
        src[i, :len(x)] = x
        dec[i, :len(y) + 1] = [BOS, *y]
        tgt[i, :len(y) + 1] = [*y, EOS]
    return Split((src, dec), tgt)


def layout(data_config):
    """The apps.translation.pairs layout of config.data's file source."""
    d = data_config
    if d.source == "tsv":
        return pairs_lib.TsvLayout(d.path, d.reverse)
    return pairs_lib.ParallelLayout(d.path, d.target_path, d.reverse)


def _streamed(config):
    """load() for files: the line index, three passes, columns (module docstring)."""
    d = config.data
    lines, problems = pairs_lib.index_pairs(layout(d))
    parts = split_indices(len(lines), d.split, config.seed)
    if d.max_examples:
        parts = [p[:d.max_examples] for p in parts]
    report = {s: {"malformed": 0} for s in SPLITS}
    report["file"] = problems

    # Learned on the training lines read in file order (sequential reads):
    # neither vocabulary depends on the order of its texts (vocab.py).
    train = lines.batches(np.sort(parts[0])).map(graph_code(
        lambda s, t: _non_empty(normalize(s, d.lowercase), normalize(t, d.lowercase))))
    source_vocab, target_vocab = fit_vocabs(config, train)

    used = np.unique(np.concatenate(parts))  # every split's lines, in file order
    non_empty, source_length, target_length = _measure(lines, used, source_vocab,
                                                       target_vocab, d.lowercase)
    rows = {}
    for s, part in zip(SPLITS, parts, strict=True):
        at = np.searchsorted(used, part)
        fits = ((source_length[at] <= d.max_source_length)
                & (target_length[at] + 1 <= d.max_target_length))
        report[s]["empty"] = int(np.sum(~non_empty[at]))
        report[s]["over_long"] = int(np.sum(non_empty[at] & ~fits))
        rows[s] = part[non_empty[at] & fits]
        report[s]["kept"] = len(rows[s])
    _check_kept(report, d)
    kept = np.searchsorted(used, np.concatenate(list(rows.values())))
    encoder = pairs_lib.PairEncoder(lines, source_vocab, target_vocab, d.lowercase,
                                    int(source_length[kept].max()),
                                    int(target_length[kept].max()) + 1)
    data = Data(*(cached(_columns(encoder, rows[s]), d.cache) for s in SPLITS))
    return data, source_vocab, target_vocab, report


def _non_empty(sources, targets):
    keep = (tf.strings.length(sources) > 0) & (tf.strings.length(targets) > 0)
    return tf.boolean_mask(sources, keep), tf.boolean_mask(targets, keep)


def _measure(lines, rows, source_vocab, target_vocab, lowercase):
    """(both sides non-empty once normalised, source tokens, target tokens) of
    each of `rows`, NumPy arrays read BATCH lines at a time."""
    def measure(sources, targets):
        sources, targets = normalize(sources, lowercase), normalize(targets, lowercase)
        non_empty = (tf.strings.length(sources) > 0) & (tf.strings.length(targets) > 0)
        return (non_empty, source_vocab.ragged_ids(sources).row_lengths(),
                target_vocab.ragged_ids(targets).row_lengths())

    parts = [[], [], []]
    ds = lines.batches(rows).map(graph_code(measure), num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
    for batch in ds.as_numpy_iterator():
        for part, values in zip(parts, batch, strict=True):
            part.append(values)
    return tuple(np.concatenate(p) for p in parts)


def _columns(encoder, rows):
    """A split of columns over `rows`; its three columns share one rows array
    (8 bytes an example) and read each line once (PairEncoder.tf_example)."""
    rows = np.asarray(rows, np.int64)  # Column keeps this very array (np.asarray copies nothing)
    src, dec, tgt = (pairs_lib.PairColumn(encoder, part, rows) for part in
                     (pairs_lib.SOURCE_IDS, pairs_lib.DECODER_INPUT_IDS, pairs_lib.TARGET_IDS))
    return Split((src, dec), tgt)


def split_indices(n, fractions, seed):
    """(train, val, test) index arrays of a seeded permutation of range(n):
    val and test get round(fraction * n) each (at least one), train the rest."""
    order = np.random.default_rng(seed).permutation(n)
    counts = [max(1, int(round(f * n))) for f in fractions[1:]]
    if n < 3 or sum(counts) >= n:
        raise UserError(f"config.data.path: {n} usable pairs are too few to split "
                        f"{tuple(fractions)} into train, val and test")
    bounds = [n - sum(counts), n - counts[1]]
    return np.split(order.astype(np.int64), bounds)


def _tfds(config):
    d = config.data
    texts, report = {}, {}

    def read(split):
        ds, info = load_tfds(d.name, d.data_dir, split, as_supervised=True)
        if d.max_examples:
            ds = ds.take(d.max_examples)
        src, tgt = [], []
        malformed = 0
        for a, b in ds.as_numpy_iterator():
            try:
                a, b = a.decode("utf-8"), b.decode("utf-8")
            except (AttributeError, UnicodeDecodeError):
                malformed += 1
                continue
            if d.reverse:
                a, b = b, a
            src.append(a)
            tgt.append(b)
        return src, tgt, {"malformed": malformed, "empty": 0}

    src, tgt, report["train"] = read("train")
    for split, name in (("val", "validation"), ("test", "test")):
        try:
            texts_split = read(name)
        except MissingSplit:
            texts_split = None
        if texts_split is None:
            raise UserError(f"TFDS data set {d.name!r} has no {name!r} split; use "
                            "config.data.source = 'tsv' for a single file")
        texts[split] = texts_split[:2]
        report[split] = texts_split[2]
    texts["train"] = (src, tgt)
    return texts, report


def _fmt_counts(counts):
    return ", ".join(f"{counts.get(k, 0)} {k.replace('_', '-')}"
                     for k in ("malformed", "empty", "over_long"))


def _check_kept(report, d):
    """Logs each split's report; a split left with no pair is a UserError."""
    for s in SPLITS:
        r = report[s]
        if r.get("malformed") or r.get("empty") or r.get("over_long"):
            logging.warning(
                "%s split: %d pairs kept; left out %s (limits: %d source tokens, %d target "
                "tokens with [END]: config.data.max_source_length / max_target_length)",
                s, r["kept"], _fmt_counts(r), d.max_source_length, d.max_target_length)
        else:
            logging.info("%s split: %d pairs", s, r["kept"])
    for s in SPLITS:
        if not report[s]["kept"]:
            raise UserError(
                f"the {s} split has no usable pairs after leaving out "
                f"{_fmt_counts(report[s])} (limits: config.data.max_source_length = "
                f"{d.max_source_length}, config.data.max_target_length = "
                f"{d.max_target_length} tokens with [END]); expected pairs within them")


#: --input values ending so are file names, never sentences
TEXT_SUFFIXES = (".txt", ".text", ".tsv", ".csv")


def read_sentences(value):
    """--mode=predict's --input: a UTF-8 text file (one sentence per line) or
    the sentence itself.

    A value that names a folder, or looks like a file name (a text-file
    suffix, or a path whose folder exists: "runs/dates.txt", not "3/5/79")
    but is no file, is a UserError rather than a sentence to translate.
    """
    if os.path.isdir(value):
        raise UserError(f"--input={value}: a folder; expected a sentence or a text file "
                        "(one sentence per line)")
    if not os.path.isfile(value):
        folder = os.path.dirname(value)
        if value.lower().endswith(TEXT_SUFFIXES) or (folder and os.path.isdir(folder)):
            raise UserError(f"--input={value}: no such file (expected a sentence to translate "
                            "or a text file, one sentence per line)")
        return [value]
    lines = [line.rstrip("\r\n") for _, line in utf8_lines(value, "one sentence per line")
             if line.strip()]
    if not lines:
        raise UserError(f"--input={value}: no sentences in the file (expected one per line)")
    return lines
