"""Debiasing word vectors (Bolukbasi et al., 2016, "Man is to Computer Programmer
as Woman is to Homemaker?"), as in the notes.

All on unit-normalised vectors, with g the unit bias direction:

* bias direction, from definitional pairs (woman, man), (she, he), ...:
  "difference": g = mean over pairs of (e_a - e_b), normalised (one pair:
  the notes' g = e_woman - e_man); "pca": the first principal component of
  the pairs' vectors centred on their pair means, {e_a - mu, e_b - mu},
  oriented so that g . (e_a - e_b) > 0 for the first pair;
* neutralize, for gender-neutral words (receptionist, doctor, ...):

      e_bias = (e . g) g,      e' = (e - e_bias) / |e - e_bias|

  so that e' . g = 0;
* equalize, for pairs that should differ only along g (actor, actress):

      mu = (e_a + e_b) / 2,    nu = mu - (mu . g) g,    z = sqrt(1 - |nu|^2)
      e_a' = nu + z g,  e_b' = nu - z g    (z's sign: that of (e_a - e_b) . g)

  so that e_a' and e_b' are unit vectors symmetric about the plane normal to
  g: every neutralized word w has w . e_a' = w . e_b' = w . nu.
"""

import numpy as np

from apps.core.errors import UserError

#: Bolukbasi et al.'s ten definitional pairs (female first).
DEFINITIONAL = ("woman:man,girl:boy,she:he,mother:father,daughter:son,gal:guy,"
                "female:male,her:his,herself:himself,mary:john")
#: Pairs to equalize (from the paper's list of gender-specific pairs).
EQUALIZE = ("actress:actor,aunt:uncle,bride:groom,daughter:son,daughters:sons,"
            "female:male,females:males,girl:boy,girls:boys,granddaughter:grandson,"
            "grandmother:grandfather,her:his,herself:himself,lady:gentleman,"
            "ladies:gentlemen,mother:father,mothers:fathers,niece:nephew,princess:prince,"
            "queen:king,queens:kings,she:he,sister:brother,sisters:brothers,wife:husband,"
            "wives:husbands,woman:man,women:men,chairwoman:chairman,"
            "congresswoman:congressman,spokeswoman:spokesman,businesswoman:businessman,"
            "mom:dad,moms:dads,grandma:grandpa,councilwoman:councilman,sorority:fraternity,"
            "schoolgirl:schoolboy,motherhood:fatherhood,heroine:hero,mrs:mr")
#: Words that are gender-specific by definition (not neutralized), besides the pairs.
GENDER_SPECIFIC = ("gal,gals,guy,guys,mary,john,lady,ladies,madam,sir,widow,widower,"
                   "maternal,paternal,maternity,paternity,pregnant,pregnancy,feminine,"
                   "masculine,feminism,femininity,masculinity,bachelor,spinster,nun,nuns,"
                   "monk,monks,priest,priests,matriarch,patriarch,godmother,godfather,"
                   "stepmother,stepfather,stepdaughter,stepson,girlfriend,boyfriend,"
                   "girlfriends,boyfriends,fiancee,fiance,ma,pa,mum,mummy,daddy,mommy,"
                   "lesbian,gay,womb,uterus,testosterone,estrogen,ovarian,prostate,"
                   "menopause,sperm,semen,childbirth,breastfeeding,manhood,womanhood,"
                   "boyhood,girlhood,sisterhood,brotherhood,duchess,duke,countess,"
                   "empress,emperor,baroness,baron,heiress,hostess,waitress,stewardess,"
                   "headmistress,headmaster,mistress")
#: Words whose bias projection the report shows (those in the vocabulary).
REPORT = ("receptionist,nurse,homemaker,teacher,secretary,librarian,doctor,engineer,"
          "scientist,programmer,architect,lawyer,pilot,captain,boss,leader,manager,"
          "president,minister,police,soldier,worker,cook,student,family,children,"
          "computer,science,art,arts,music,sport,football,war")


def parse_pairs(text, field="config.debias pairs"):
    """'a:b,c:d' -> [(a, b), (c, d)] (lower-cased)."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        parts = item.lower().split(":")
        if len(parts) != 2 or not all(parts):
            raise UserError(f"{field}: {item!r} is not a pair 'word:word'")
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_words(text):
    return [w.strip().lower() for w in text.split(",") if w.strip()]


def unit(x):
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def bias_direction(vectors, pairs, method="pca"):
    """The unit bias direction g from definitional pairs (those in the vocabulary)."""
    known = [(a, b) for a, b in pairs if a in vectors and b in vectors]
    if not known:
        raise UserError("none of the definitional pairs (config.debias.definitional) has "
                        "both words in the vocabulary")
    ea = unit([vectors.matrix[vectors.index[a]] for a, _ in known])
    eb = unit([vectors.matrix[vectors.index[b]] for _, b in known])
    if method == "difference":
        g = (ea - eb).mean(axis=0)
    elif method == "pca":
        mu = (ea + eb) / 2
        centred = np.concatenate([ea - mu, eb - mu])
        g = np.linalg.svd(centred, full_matrices=False)[2][0]
        if g @ (ea[0] - eb[0]) < 0:
            g = -g
    else:
        raise ValueError(method)
    return unit(g), known


def projection(e, g):
    """The component e . g of (unit) vectors e on the unit direction g."""
    return unit(e) @ g


def neutralize(e, g):
    """e minus its projection on g, renormalised: the result has e' . g = 0."""
    e = unit(e)
    return unit(e - np.outer(e @ g, g) if e.ndim == 2 else e - (e @ g) * g)


def equalize(ea, eb, g):
    """The pair moved symmetric about the plane normal to g (see the module docstring)."""
    ea, eb = unit(ea), unit(eb)
    mu = (ea + eb) / 2
    nu = mu - (mu @ g) * g
    z = np.sqrt(max(0.0, 1.0 - float(nu @ nu)))
    if (ea - eb) @ g < 0:
        z = -z
    return nu + z * g, nu - z * g


def debias(vectors, definitional, equalize_pairs, gender_specific, report_words,
           method="pca"):
    """Debiased copy of `vectors` (unit rows) and a report of projections on g.

    Every word outside `gender_specific` and the equalize pairs is
    neutralized; each equalize pair with both words known is equalized.
    """
    g, used = bias_direction(vectors, definitional, method)
    matrix = unit(vectors.matrix)
    specific = set(gender_specific) | {w for pair in equalize_pairs for w in pair}
    specific |= {w for pair in definitional for w in pair}
    neutral = np.array([w not in specific for w in vectors.words])
    before = matrix @ g
    out = matrix.copy()
    out[neutral] = neutralize(matrix[neutral], g)
    equalized = []
    for a, b in equalize_pairs:
        if a in vectors and b in vectors:
            i, j = vectors.index[a], vectors.index[b]
            out[i], out[j] = equalize(matrix[i], matrix[j], g)
            equalized.append((a, b))
    after = out @ g
    index = vectors.index
    report = {
        "method": method,
        "definitional_pairs_used": [f"{a}:{b}" for a, b in used],
        "neutralized_words": int(neutral.sum()),
        "words": {w: {"before": float(before[index[w]]), "after": float(after[index[w]])}
                  for w in report_words if w in index},
        "equalized": {
            f"{a}:{b}": {
                "before": [float(before[index[a]]), float(before[index[b]])],
                "after": [float(after[index[a]]), float(after[index[b]])]}
            for a, b in equalized},
        "mean_abs_projection_neutral_before": float(np.abs(before[neutral]).mean())
        if neutral.any() else 0.0,
        "mean_abs_projection_neutral_after": float(np.abs(after[neutral]).mean())
        if neutral.any() else 0.0,
    }
    return vectors.with_matrix(out.astype(np.float32)), report
