"""The embedded default data: human-readable dates -> ISO 8601 (the course's task).

Each example is one calendar date written in one of many human formats,
generated with Babel's CLDR date formatting in several English locales and
lower-cased, as in the course (e.g. "saturday, 9 may 2018", "3/5/79",
"march 3, 1979"), paired with its ISO 8601 form "yyyy-mm-dd".

The formats are chosen so that every source has exactly one reading: numeric
dates with slashes are month-first (en_US "short"), numeric dates with dots
or spaces are day-first, and two-digit years stand for 1950..2049, which is
the range dates are drawn from. Train, validation and test hold disjoint sets
of dates (a held-out date is never seen in training in any format), drawn
with a fixed seed.
"""

import datetime

import numpy as np

LOCALES = ("en_US", "en_GB", "en_AU", "en_CA", "en_IE")
#: CLDR names or patterns, and the locales each is rendered in.
FORMATS = (
    ("short", ("en_US",)),  # 3/5/79 (month first)
    ("short", ("en_CA",)),  # 1979-03-05
    ("medium", LOCALES),  # Mar 5, 1979 / 5 Mar 1979 / 5 Sept 2018
    ("long", LOCALES),  # March 5, 1979 / 5 March 1979
    ("full", LOCALES),  # Monday, March 5, 1979 / Monday 5 March 1979
    ("d MMM y", LOCALES),
    ("d MMMM y", LOCALES),
    ("dd MMM y", LOCALES),
    ("d MMM, y", LOCALES),
    ("d MMMM, y", LOCALES),
    ("dd, MMM y", LOCALES),
    ("d MM yy", ("en_US",)),  # 5 03 79 (day first)
    ("MMMM d y", LOCALES),
    ("MMMM d, y", LOCALES),
    ("dd.MM.yy", ("en_US",)),  # 05.03.79 (day first)
    ("EEEE d MMMM y", LOCALES),
    ("EEE d MMM yy", LOCALES),
    ("EEE, MMM d, y", LOCALES),
)
FIRST = datetime.date(1950, 1, 1)
LAST = datetime.date(2049, 12, 31)


def render(date, pattern, locale):
    """One date in one format, lower-cased."""
    from babel.dates import format_date

    return format_date(date, format=pattern, locale=locale).lower()


def generate(sizes, seed):
    """Source and target strings for each of `sizes` (train, val, test) examples.

    The dates of the splits are disjoint; within a split a date may come back
    in other formats. Returns [(sources, targets)] per split.
    """
    rng = np.random.default_rng(seed)
    days = (LAST - FIRST).days + 1
    # Disjoint pools of days: the held-out splits get one date per example,
    # training gets whatever is left (and revisits dates in other formats).
    order = rng.permutation(days)
    held = sizes[1] + sizes[2]
    if held >= days:
        raise ValueError(f"at most {days - 1} held-out dates (one per day from {FIRST} to "
                         f"{LAST}); asked for {held}")
    pools = [order[held:], order[:sizes[1]], order[sizes[1]:held]]
    out = []
    for size, pool in zip(sizes, pools, strict=True):
        picked = pool[rng.integers(0, len(pool), size)] if size > len(pool) else \
            rng.permutation(pool)[:size]
        choice = rng.integers(0, len(FORMATS), size)
        locale_draw = rng.random(size)
        sources, targets = [], []
        for day, f, u in zip(picked, choice, locale_draw, strict=True):
            date = FIRST + datetime.timedelta(days=int(day))
            pattern, locales = FORMATS[f]
            sources.append(render(date, pattern, locales[int(u * len(locales))]))
            targets.append(date.isoformat())
        out.append((sources, targets))
    return out
