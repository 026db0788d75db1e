"""The standard intrinsic evaluations of word vectors.

Word similarity (WordSim-353, SimLex-999): the Spearman rank correlation
between the human scores and the cosine similarities of the pairs whose two
words are both in the vocabulary ("covered"),

    rho = Pearson correlation of rank(human) and rank(cosine)

with tied values given their average rank (so it equals
scipy.stats.spearmanr and gensim's evaluate_word_pairs).

Analogies (Mikolov et al.'s questions-words.txt, 19,544 questions
a b c d in 14 sections; the 5 first are semantic, the "gram*" ones
syntactic): a question is covered when its four words are in the
vocabulary, and answered right when 3CosAdd (vectors.WordVectors.analogy)
returns d. accuracy = right / covered, coverage = covered / all questions,
overall and for the semantic and syntactic sections (what gensim's
evaluate_word_analogies reports).
"""

import dataclasses

import numpy as np

from apps.core.errors import UserError
from apps.embeddings.text import file_lines

ANALOGY_BATCH = 256

#: the word-similarity sets, each reported as <set>_spearman and <set>_coverage
SIMILARITY_SETS = ("ws353", "simlex999")
#: every figure the evaluation reports (EmbeddingsTask.evaluate), by name; they
#: rate the vectors themselves (no split is held out), so metrics.json keeps
#: them unprefixed
METRICS = (*(f"{name}_{figure}" for name in SIMILARITY_SETS
             for figure in ("spearman", "coverage")),
           *(f"{prefix}_{figure}" for prefix in ("analogy", "analogy_semantic",
                                                 "analogy_syntactic")
             for figure in ("accuracy", "coverage", "questions")))


@dataclasses.dataclass
class WordPairs:
    name: str
    pairs: list  # [(word1, word2)]
    scores: np.ndarray


@dataclasses.dataclass
class Analogies:
    sections: list  # [(name, [(a, b, c, d)])]

    @property
    def total(self):
        return sum(len(q) for _, q in self.sections)


def load_word_pairs(path, name):
    """Word-pair similarity file: "word1 word2 score" per line (tabs or spaces; # comments)."""
    pairs, scores = [], []
    for number, line in _lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            pairs.append((parts[0].strip().lower(), parts[1].strip().lower()))
            scores.append(float(parts[2]))
        except (IndexError, ValueError):
            raise UserError(f"{path}:{number}: expected 'word1 word2 score'") from None
    if not pairs:
        raise UserError(f"{path}: no word pairs (expected 'word1 word2 score' per line)")
    return WordPairs(name, pairs, np.asarray(scores, np.float64))


def load_analogies(path):
    """questions-words.txt: ": section" lines, then "a b c d" questions."""
    sections = []
    for number, line in _lines(path):
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.lower().split()
        if len(words) != 4 or not sections:
            raise UserError(f"{path}:{number}: expected ': section' or four words")
        sections[-1][1].append(tuple(words))
    if not any(questions for _, questions in sections):
        raise UserError(f"{path}: no analogy questions (expected ': section' lines, then "
                        "'a b c d' per line)")
    return Analogies(sections)


def _lines(path):
    """(number, stripped line) of the non-empty, non-comment lines of a UTF-8 file."""
    for number, line in enumerate(file_lines([path]), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def rank(values):
    """Ranks 1..n, ties sharing their average rank."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    # Average the ranks of equal values.
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse] if len(unique) < len(values) else ranks


def spearman(x, y):
    """Spearman's rho: the Pearson correlation of the (average) ranks."""
    rx, ry = rank(x), rank(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denominator = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denominator) if denominator else float("nan")


def word_similarity(vectors, pairs):
    """{spearman, coverage, pairs}: rho on the covered pairs."""
    covered = [k for k, (a, b) in enumerate(pairs.pairs) if a in vectors and b in vectors]
    result = {"coverage": len(covered) / max(1, len(pairs.pairs)), "pairs": len(covered)}
    if len(covered) < 3:
        return {**result, "spearman": float("nan")}
    a = np.array([vectors.index[pairs.pairs[k][0]] for k in covered])
    b = np.array([vectors.index[pairs.pairs[k][1]] for k in covered])
    cosines = np.sum(vectors.unit[a] * vectors.unit[b], axis=1)
    return {**result, "spearman": spearman(pairs.scores[covered], cosines)}


def analogy(vectors, analogies):
    """Accuracy and coverage of 3CosAdd, overall, semantic and syntactic."""
    index = vectors.index
    questions, kinds = [], []
    totals = {"all": 0, "semantic": 0, "syntactic": 0}
    for name, section in analogies.sections:
        kind = "syntactic" if name.startswith("gram") else "semantic"
        totals["all"] += len(section)
        totals[kind] += len(section)
        for q in section:
            if all(w in index for w in q):
                questions.append([index[w] for w in q])
                kinds.append(kind)
    right = _answered_right(vectors.unit, np.array(questions, np.int64).reshape(-1, 4))
    kinds = np.array(kinds)
    out = {}
    for kind in ("all", "semantic", "syntactic"):
        chosen = np.ones(len(kinds), bool) if kind == "all" else kinds == kind
        covered = int(chosen.sum())
        prefix = "analogy" if kind == "all" else f"analogy_{kind}"
        out[f"{prefix}_accuracy"] = float(right[chosen].mean()) if covered else 0.0
        out[f"{prefix}_coverage"] = covered / totals[kind] if totals[kind] else 0.0
        out[f"{prefix}_questions"] = covered
    return out


def _answered_right(unit, questions):
    """Whether argmax_{w not in a, b, c} unit[w] . (b - a + c) is d, per question."""
    right = np.zeros(len(questions), bool)
    for start in range(0, len(questions), ANALOGY_BATCH):
        q = questions[start:start + ANALOGY_BATCH]
        target = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]
        scores = target @ unit.T
        rows = np.arange(len(q))[:, None]
        scores[rows, q[:, :3]] = -np.inf
        right[start:start + len(q)] = np.argmax(scores, axis=1) == q[:, 3]
    return right
