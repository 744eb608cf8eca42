"""Sentences for the report's summary on paired comparisons of feature sets: which differences the data
support and which they do not (rows from :func:`dis_core.score.scoring.feature_set_comparisons`)."""

from __future__ import annotations

from typing import Sequence

METRICS = (("top1", "top-1", 1), ("eer", "EER", -1), ("auc", "AUC", 1))  # (key, label, +1 if higher is better)
ALPHA = 0.05
# Below this many people a bootstrap over them has too few distinct draws to support a claim: with 2 people
# every usable draw is the same pair, so an EER difference of +0.50 came out as [+0.50, +0.50], p 0.000.
MIN_PEOPLE = 10


def supported(row: dict, key: str, alpha: float = ALPHA) -> bool:
    """A difference is supported when its 95% interval excludes 0 and its Holm-adjusted p < alpha, on at
    least MIN_PEOPLE participants."""
    return ((row[f"{key}_diff_lo"] > 0 or row[f"{key}_diff_hi"] < 0) and row[f"{key}_p_holm"] < alpha
            and row.get("participants", MIN_PEOPLE) >= MIN_PEOPLE)


def feature_set_verdict(rows: Sequence[dict], alpha: float = ALPHA) -> str:
    """One sentence: the feature-set family, the supported differences (with the better set named, the
    difference, its interval and Holm p) and the comparisons without a supported difference."""
    if not rows:
        return "fewer than two feature sets with 3+ common participants: no feature-set comparison"
    yes, no = [], []
    for r in rows:
        fa, fb = r["feature_set"].split(" vs ")
        unsupported = []
        for key, label, better in METRICS:
            d = r[f"{key}_diff"]
            if supported(r, key, alpha):
                win, lose = (fa, fb) if d * better > 0 else (fb, fa)
                yes.append(f"{win} better than {lose} on {label} ({r['method']}, {r['participants']} people: "
                           f"a - b {d:+.2f} [{r[f'{key}_diff_lo']:+.2f}, {r[f'{key}_diff_hi']:+.2f}], "
                           f"Holm p {r[f'{key}_p_holm']:.3f})")
            else:
                unsupported.append(label)
        if unsupported:
            no.append(f"{r['feature_set']} ({r['method']}): {', '.join(unsupported)}")
    family = (f"{len(rows)} feature-set comparison(s) x {len(METRICS)} metrics, paired bootstrap over the common "
              f"participants, Holm-corrected across these {len(rows) * len(METRICS)} tests; no claim on fewer than "
              f"{MIN_PEOPLE} people")
    return (f"feature sets ({family}): supported: {'; '.join(yes) if yes else 'none'}; "
            f"not supported: {'; '.join(no) if no else 'none'}")
