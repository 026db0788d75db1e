"""Translation data: the embedded dates, a tab-separated parallel file, or TFDS.

    config.data.source = "dates"  human-readable dates -> ISO 8601, generated
                                  (apps.translation.dates), character level
                       = "tsv"    config.data.path: one pair per line,
                                  "source<TAB>target[<TAB>anything]" (the Anki /
                                  manythings.org format of the Keras and
                                  TensorFlow NMT tutorials); config.data.reverse
                                  swaps the two columns
                       = "tfds"   config.data.name (e.g. ted_hrlr_translate/pt_to_en),
                                  prepared in config.data.data_dir; its own
                                  train / validation / test splits

Text is stripped (and lower-cased if config.data.lowercase) and tokenized by
config.data.tokenizer ("char" or "wordpiece", apps.translation.vocab) with
vocabularies learned on the training split. Every split becomes

    inputs  = (source_ids (N, S), decoder_input_ids (N, T))   decoder inputs = [START] y
    targets = target_ids (N, T)                                targets = y [END]

padded with 0: teacher forcing feeds the target shifted right by one. Lines
that are malformed (fewer than two tab-separated fields, not UTF-8), empty
(a side with no text) or over-long (more than config.data.max_source_length
source tokens or config.data.max_target_length target tokens with [END]) are
counted and reported, then left out.
"""

import os

import numpy as np
from absl import logging

from apps.core.data import MissingSplit, Split, load_tfds
from apps.core.errors import UserError
from apps.core.task import Data
from apps.core.text import utf8_lines
from apps.translation import dates as dates_lib
from apps.translation import vocab as vocab_lib
from apps.translation.vocab import BOS, EOS, PAD

SPLITS = ("train", "val", "test")


def load(config):
    """Returns (Data, source_vocab, target_vocab, report) for config.data.

    `report` counts what was left out: {split: {"malformed", "empty",
    "over_long", "kept"}}, and for a TSV file also {"file": {"malformed",
    "empty"}}, the lines left out before the split (logged by `read_tsv`).
    """
    d = config.data
    report = {}
    if d.source == "dates":
        sizes = (d.dates.train, d.dates.val, d.dates.test)
        try:
            texts = dict(zip(SPLITS, dates_lib.generate(sizes, config.seed), strict=True))
        except ValueError as e:
            raise UserError(f"config.data.dates.val + test: {e}") from None
        report = {s: {"malformed": 0, "empty": 0} for s in SPLITS}
    elif d.source == "tsv":
        sources, targets, problems = read_tsv(d.path, d.reverse)
        texts = _random_split(sources, targets, d.split, config.seed)
        report = {s: {"malformed": 0, "empty": 0} for s in SPLITS}
        report["file"] = problems
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

    source_vocab, target_vocab = fit_vocabs(config, *texts["train"])
    splits = {}
    for s in SPLITS:
        src_ids = source_vocab.encode(texts[s][0])
        tgt_ids = target_vocab.encode(texts[s][1])
        keep = [i for i, (a, b) in enumerate(zip(src_ids, tgt_ids, strict=True))
                if len(a) <= d.max_source_length and len(b) + 1 <= d.max_target_length]
        report[s]["over_long"] = len(src_ids) - len(keep)
        report[s]["kept"] = len(keep)
        splits[s] = ([src_ids[i] for i in keep], [tgt_ids[i] for i in keep])
    _log_report(report, d)
    for s in SPLITS:
        if not splits[s][0]:
            raise UserError(
                f"the {s} split has no usable pairs after leaving out "
                f"{_fmt_counts(report[s])} (limits: config.data.max_source_length = "
                f"{d.max_source_length}, config.data.max_target_length = "
                f"{d.max_target_length} tokens with [END]); expected pairs within them")
    source_width = max(len(x) for s in SPLITS for x in splits[s][0])
    target_width = max(len(y) for s in SPLITS for y in splits[s][1]) + 1
    data = Data(*(make_split(*splits[s], source_width, target_width) for s in SPLITS))
    return data, source_vocab, target_vocab, report


def fit_vocabs(config, sources, targets):
    d = config.data
    if d.tokenizer == "char":
        return vocab_lib.CharVocab.fit(sources), vocab_lib.CharVocab.fit(targets)
    return (vocab_lib.WordPieceVocab.fit(sources, d.vocab_size, d.lowercase),
            vocab_lib.WordPieceVocab.fit(targets, d.vocab_size, d.lowercase))


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


def read_tsv(path, reverse=False):
    """(sources, targets, {"malformed": n, "empty": n}) of a tab-separated pair file."""
    if not path:
        raise UserError("config.data.path is empty: give the tab-separated file of "
                        "sentence pairs (source<TAB>target per line)")
    if os.path.isdir(path):
        raise UserError(f"config.data.path = {path!r}: a folder; expected a tab-separated file "
                        "of sentence pairs (source<TAB>target per line)")
    if not os.path.isfile(path):
        raise UserError(f"config.data.path = {path!r}: no such file")
    sources, targets = [], []
    malformed, empty, first_bad, first_empty = 0, 0, [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                # A byte-order mark (some editors write one) is no character.
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                malformed += 1
                first_bad.append(number)
                continue
            if not line.strip():
                empty += 1
                first_empty.append(number)
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                malformed += 1
                first_bad.append(number)
                continue
            source, target = fields[0].strip(), fields[1].strip()
            if reverse:
                source, target = target, source
            if not source or not target:
                empty += 1
                first_empty.append(number)
                continue
            sources.append(source)
            targets.append(target)
    if malformed or empty:
        logging.warning(
            "%s: left out %d malformed line(s)%s, expected UTF-8 source<TAB>target; and %d "
            "blank or with an empty side%s", path, malformed, _lines(first_bad), empty,
            _lines(first_empty))
    if not sources:
        raise UserError(f"config.data.path = {path!r}: no source<TAB>target pairs "
                        f"in its lines: {malformed} malformed{_lines(first_bad)}, {empty} "
                        f"blank or with an empty side{_lines(first_empty)}; expected UTF-8 "
                        "text, one source<TAB>target pair per line")
    return sources, targets, {"malformed": malformed, "empty": empty}


def _lines(numbers):
    """" (e.g. line 3 7 9)" for the first five line numbers, or ""."""
    return f" (e.g. line {' '.join(str(n) for n in numbers[:5])})" if numbers else ""


def _random_split(sources, targets, fractions, seed):
    n = len(sources)
    order = np.random.default_rng(seed).permutation(n)
    counts = [max(1, int(round(f * n))) for f in fractions[1:]]
    if n < 3 or sum(counts) >= n:
        raise UserError(f"config.data.path: {n} usable pairs are too few to split "
                        f"{tuple(fractions)} into train, val and test")
    bounds = [n - sum(counts), n - counts[1]]
    parts = np.split(order, bounds)
    return {s: ([sources[i] for i in p], [targets[i] for i in p])
            for s, p in zip(SPLITS, parts, strict=True)}


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


def _log_report(report, d):
    for s in SPLITS:
        r = report[s]
        if r.get("malformed") or r.get("empty") or r.get("over_long"):
            logging.warning(
                "%s split: %d pairs kept; left out %s (limits: %d source tokens, %d target "
                "tokens with [END]: config.data.max_source_length / max_target_length)",
                s, r["kept"], _fmt_counts(r), d.max_source_length, d.max_target_length)
        else:
            logging.info("%s split: %d pairs", s, r["kept"])


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
