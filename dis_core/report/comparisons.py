"""The report's findings on paired comparisons: whether the flows beat their baselines, which feature-set
differences the data support, and the partner tests. Each is a :class:`Finding` in parts, so that the workbook
and terminal read it as one line and the page lists its claims one per item without parsing a sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from dis_core.score.scoring import MIN_COMMON, VERDICT_KEYS
from dis_core.score.stats import MIN_COUPLES, MIN_PEOPLE, couples_left_out, few_couples, holm, p_floor_notes, p_text, signed

if TYPE_CHECKING:
    from dis_core.score.evaluate import FeatureSetScores

METRICS = (("top1", "top-1", 1), ("eer", "EER", -1), ("auc", "AUC", 1))  # (key, label, +1 if higher is better)
VERDICT_METRICS = tuple(m for m in METRICS if m[0] in VERDICT_KEYS)  # flow vs baseline: top-1 and EER
BASELINE_NAMES = {"gaussian": "the Gaussian baseline", "ar": "the autoregressive baseline"}
ALPHA = 0.05


@dataclass(frozen=True)
class Finding:
    """One finding: its head, the claims it lists (label, items; an empty label lists items without a name) and
    its tone: ``ok`` the flows beat a baseline, ``no`` they do not, ``info`` neither claim; ``brief``, where set,
    says it in a line for a summary table whose page lists the claims elsewhere."""

    head: str
    lists: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tone: Literal["ok", "no", "info"] = "info"
    brief: str = ""

    @property
    def text(self) -> str:
        """The finding as one line (workbook, terminal): head and lists joined by '; ', an empty list 'none'."""
        parts = [self.head] + [f"{label}: {'; '.join(items) or 'none'}" if label else "; ".join(items)
                               for label, items in self.lists]
        return "; ".join(p for p in parts if p)


def chance_text(chance: float) -> str:
    """Chance top-1 to three significant digits: 1/40 is 0.025, not 0.03 (and 1/300 not 0.00)."""
    return f"{chance:.3g}"


CHANCE_ALPHA = 0.05  # top-1 is above chance when its permutation p (stats.top1_chance_p) is at most this


def at_chance(m: dict, people: int | None = None) -> list[str]:
    """The metrics of a method's row not told apart from guessing on these people: top-1 whose permutation p
    against chance (``top1_chance_p``; rows without it: its interval holding 1/N) exceeds CHANCE_ALPHA, EER and
    AUC whose 95% interval holds 0.5. Top-1's interval also holds the models' own variation over new cohorts and
    reached 0 at 5 of 12 people on a cohort where guessing did as well with p 0.002. One wholly on the wrong side
    of chance is named as worse than chance (a confound, or scores the wrong way round, more likely than bad luck). Below
    MIN_PEOPLE people (``people``, else the row's participants) AUC and EER are not told apart from chance either:
    their bootstrap over so few people is too narrow (with 2 every draw is the same pair: a width of 0)."""
    people = m.get("participants") if people is None else people
    few = people is not None and people < MIN_PEOPLE
    out = []
    for key, label, chance, better in (("top1", "top-1", m["chance_top1"], 1), ("eer", "EER", 0.5, -1),
                                       ("auc", "AUC", 0.5, 1)):
        if few and key != "top1":  # top-1's test is exact with few people
            continue
        lo, hi = m[f"{key}_lo"], m[f"{key}_hi"]
        p = m.get("top1_chance_p") if key == "top1" else None
        tested = p is not None and np.isfinite(p)
        if (p > CHANCE_ALPHA and not hi < chance) if tested else lo <= chance <= hi:
            out.append(label)
        elif (hi < chance) if better > 0 else (lo > chance):
            out.append(f"{label} worse than chance")
    if few:
        out.append(FEW_PEOPLE)
    return out


FEW_PEOPLE = f"EER and AUC: too few people to tell (under {MIN_PEOPLE})"


def at_chance_text(items: list[str]) -> str:
    """:func:`at_chance`'s list as the page and terminal print it: the metrics not above chance, then the
    few-people caveat as its own clause ('top-1; EER and AUC: too few ...', not 'top-1, EER and AUC: too few ...',
    which read as if top-1's finding were the caveat)."""
    return "; ".join(x for x in (", ".join(x for x in items if x != FEW_PEOPLE), *(x for x in items if x == FEW_PEOPLE))
                     if x)


def reversed_on(row: dict, key: str, sign: int = 1) -> str:
    """'; on raw scores the other way round (-0.12)' for each other normalisation (raw, z-norm) whose point
    difference of ``key`` (EER, AUC) has the other sign than the t-norm one; '' when none has, or for top-1,
    which has one normalisation. ``sign`` -1 says the differences as b - a."""
    d = row[f"{key}_diff"]
    out = []
    for norm, word in (("raw", "raw"), ("znorm", "z-norm")):
        o = row.get(f"{key}_{norm}_diff")
        if o is not None and np.isfinite(o) and d * o < 0:
            out.append(f"; on {word} scores the other way round ({signed(sign * o)}): the claim rests on the "
                       "t-norm")
    return "".join(out)


def supported(row: dict, key: str, alpha: float = ALPHA) -> bool:
    """A difference is supported when its 95% interval excludes 0 and its Holm-adjusted p < alpha, on at
    least MIN_PEOPLE participants."""
    return ((row[f"{key}_diff_lo"] > 0 or row[f"{key}_diff_hi"] < 0) and row[f"{key}_p_holm"] < alpha
            and row.get("participants", MIN_PEOPLE) >= MIN_PEOPLE)


def feature_set_verdict(rows: Sequence[dict], alpha: float = ALPHA) -> Finding:
    """The feature-set family, then the supported differences (with the better set named, the difference,
    its interval and Holm p) and the comparisons without a supported difference, one per item."""
    if not rows:
        return Finding(f"fewer than two feature sets with {MIN_COMMON}+ common participants: no feature-set comparison")
    yes, no, claimless = [], [], []
    for r in rows:
        fa, fb = r["feature_set"].split(" vs ")
        unsupported = []
        for key, label, better in METRICS:
            d = r[f"{key}_diff"]
            if supported(r, key, alpha):
                win, lose = (fa, fb) if d * better > 0 else (fb, fa)
                sign = 1 if win == fa else -1  # said as the better minus the worse
                lo, hi = sorted((sign * r[f"{key}_diff_lo"], sign * r[f"{key}_diff_hi"]))
                yes.append(f"{win} better than {lose} on {label} ({r['method']}, {r['participants']} people: "
                           f"{win} - {lose} {signed(sign * d)} [{signed(lo)}, {signed(hi)}], "
                           f"Holm p {p_text(r[f'{key}_p_holm'])}{reversed_on(r, key, sign)})")
            else:
                unsupported.append(label)
        if unsupported:  # on too few people nothing was tested for a claim: not 'no supported difference'
            (claimless if r["participants"] < MIN_PEOPLE else no).append(
                f"{r['feature_set']} ({r['method']}): {', '.join(unsupported)}")
    few = sum(r["participants"] < MIN_PEOPLE for r in rows)  # refused, not tested and found wanting
    family = (f"{len(rows)} feature-set comparison(s) x {len(METRICS)} metrics, paired bootstrap over the common "
              f"participants, Holm-corrected across the {(len(rows) - few) * len(METRICS)} tests on {MIN_PEOPLE}+ "
              f"common people; no claim on fewer")
    return Finding(f"feature sets ({family})",
                   (("supported differences", tuple(yes)),
                    *((("no supported difference", tuple(no)),) if no or not claimless else ()),
                    *(((f"no claim (fewer than {MIN_PEOPLE} people)", tuple(claimless)),) if claimless else ())),
                   brief=(f"feature sets: no claim, all {len(rows)} comparison(s) on fewer than {MIN_PEOPLE} common "
                          "people (none tested)" if rows and few == len(rows) else
                          f"feature sets: {len(yes)} of {(len(rows) - few) * len(METRICS)} paired differences supported "
                          f"after Holm ({len(rows) - few} comparison(s) x {len(METRICS)} metrics"
                          + (f"; {few} more comparison(s) on fewer than {MIN_PEOPLE} people: no claim either way)"
                             if few else ")")))


def baseline_holm(results: list[FeatureSetScores]) -> dict[tuple[str, str, str], float]:
    """Holm-adjusted p of every flow-vs-baseline difference of the run (feature sets x baselines x top-1 and
    EER): one family, so that a verdict survives however many feature sets and baselines were compared."""
    keys = [(r.feature_set, b, k) for r in results for b in r.comparisons for k, _, _ in VERDICT_METRICS
            if len(r.participants) >= MIN_PEOPLE]  # a set refused a claim is not a test of the family
    ps = [next(r.comparisons[b][f"{k}_p"] for r in results if r.feature_set == fs) for fs, b, k in keys]
    return dict(zip(keys, (float(x) for x in holm(ps)))) if keys else {}


def baseline_verdict(r: FeatureSetScores, p_holm: dict[tuple[str, str, str], float] | None = None,
                     alpha: float = ALPHA) -> Finding:
    """Whether the flows beat each baseline (Gaussian; autoregressive for lagged rows), from the paired
    differences: a difference is supported when its interval excludes 0 and its Holm-adjusted p
    (:func:`baseline_holm`; unadjusted without it) is below ``alpha``, on at least MIN_PEOPLE people. The
    flows beat a baseline when at least one metric is supported better and none is supported worse; the
    tone is ``no`` when any baseline is not beaten, ``info`` with too few people to tell."""
    out, beaten = [], []
    few = len(r.participants) < MIN_PEOPLE  # too few people for a bootstrap over them to support anything
    for b, c in r.comparisons.items():
        parts, better_on, worse_on = [], [], []
        for key, label, better in VERDICT_METRICS:
            d, lo, hi = c[f"{key}_diff"], c[f"{key}_diff_lo"], c[f"{key}_diff_hi"]
            p = (p_holm or {}).get((r.feature_set, b, key), c[f"{key}_p"])
            sig = p < alpha and not few
            ahead = sig and ((lo > 0) if better > 0 else (hi < 0))
            worse = sig and ((hi < 0) if better > 0 else (lo > 0))
            better_on += [label] if ahead else []
            worse_on += [label] if worse else []
            word = ("better (supported)" if ahead else "worse (supported)" if worse else
                    "no claim" if few else "no supported difference")
            parts.append(f"{label} flow - baseline {signed(d)} [{signed(lo)}, {signed(hi)}], "
                         f"{'Holm ' if (r.feature_set, b, key) in (p_holm or {}) else ''}p {p_text(p)}: {word}"
                         + (reversed_on(c, key) if ahead or worse else ""))
        name = BASELINE_NAMES.get(b, b)
        beaten.append(bool(better_on) and not worse_on)
        head = (f"too few people to tell whether the flows beat {name}" if few else
                f"the flows beat {name}" if beaten[-1] else
                f"the flows do NOT beat {name}: mixed, the flows supported better on {' and '.join(better_on)}, the "
                f"baseline on {' and '.join(worse_on)}" if better_on else
                f"the flows do NOT beat {name}, which is supported better on {' and '.join(worse_on)}" if worse_on else
                f"the flows do NOT beat {name}: not shown better (nor shown equal)")
        out.append(f"{head} ({'; '.join(parts)})")
    note = f" (only {len(r.participants)} people: no claim below {MIN_PEOPLE})" if few and out else ""
    start = kept_start(r)
    if start and out and pooled_shape(r):  # one shape for everyone: one flow kept its start, not N
        note += (" (the pooled flow kept its Gaussian start, no epoch beating it on validation rows: refitted on every "
                 "row, it is the pooled baseline, so the two differ only by rounding)")
    elif start and out:  # such a 'flow' is its start, a Ledoit-Wolf Gaussian refitted on every row: its baseline
        base = "autoregressive" if conditional(r) else "Gaussian"
        note += (f" (the flow kept its Gaussian start, no epoch beating it on validation rows, for {start} of "
                 f"{len(r.participants)} participants: refitted on every training row, it is their {base} "
                 "baseline)")
    tone = "info" if few or not beaten else "ok" if all(beaten) else "no"
    return Finding(f"{r.feature_set}: {'; '.join(out)}{note}", tone=tone)


def _records(r: FeatureSetScores) -> list[dict]:
    """The training records (train.json) of the participants a feature set scored."""
    return [t for p, t in (getattr(r, "training", None) or {}).items() if p in r.participants]


def kept_start(r: FeatureSetScores) -> int:
    """How many of a feature set's participants have a flow that kept its start, the Ledoit-Wolf Gaussian of its
    rows (chosen epoch 0)."""
    return sum(t.get("chosen_epoch") == 0 for t in _records(r))


def conditional(r: FeatureSetScores) -> bool:
    """Whether the feature set's flows are conditional (p(present | past)): their start is the autoregressive
    Gaussian, not the joint one (the training records' configuration)."""
    def flow_of(t: dict) -> dict:
        prov = t.get("provenance")
        return ((prov.get("config") or {}).get("flow") or {}) if isinstance(prov, dict) else {}

    return any(flow_of(t).get("conditional", "none") != "none" for t in _records(r))


def pooled_shape(r: FeatureSetScores) -> bool:
    """Whether the feature set's models are one pooled shape placed at each participant's mean (their training
    records name the pooled shape's key)."""
    recs = _records(r)
    return bool(recs) and all(str((t.get("provenance") or {}).get("pooled_key", "")) for t in recs)


def partner_refusal(results: list[FeatureSetScores]) -> str:
    """Why no partner test ran: the first refusal a feature set recorded, else too few complete dyads (or no
    feature set scored at all, which says nothing of the dyads)."""
    if not results:
        return "no feature set was scored"
    for r in results:
        for x in r.left_out:
            if x.get("reason", "").startswith("partner test not run: "):
                return x["reason"].removeprefix("partner test not run: ")
    return "fewer than two complete dyads"


def partner_family(results: list[FeatureSetScores]) -> Finding:
    """The partner-vs-stranger family in words, then each test's outcome after Holm's correction."""
    rows = [(r.feature_set, m, r.methods[m].dyads) for r in results for m in r.methods if r.methods[m].dyads]
    if not rows:
        return Finding(f"no partner test ({partner_refusal(results)})")
    tests, alike = [], []
    floors = p_floor_notes([t.get("p_floor", 0.0) for _, _, t in rows], exact=[t.get("exact", True) for _, _, t in rows])
    for (fs, m, t), floor in zip(rows, floors):
        ok = t["p_holm"] < ALPHA
        sig = "partners more alike than strangers (supported)" if ok else "not supported"
        alike += [f"{fs}/{m}"] if ok else []
        few = few_couples(t.get("dyads", MIN_COUPLES)) + floor + couples_left_out(t)
        tests.append(f"{fs}/{m}: {signed(t['observed'])} [{signed(t['ci_lo'])}, {signed(t['ci_hi'])}]{few} against "
                     f"pseudo-couples' {signed(t.get('chance', t['null_mean']))}, one-sided p {p_text(t['p'])}, Holm p {p_text(t['p_holm'])}: "
                     f"{sig}")
    return Finding(f"family: {len(rows)} one-sided permutation test(s) (partners more alike than pseudo-couples), "
                   "Holm-corrected; each gives the observed partner statistic with its 95% interval over couples "
                   "(expanded percentile bootstrap), "
                   "and the pseudo-couples' mean (what chance gives)", (("", tuple(tests)),),
                   brief=f"{len(alike)} of {len(rows)} one-sided permutation test(s) supported after Holm "
                         f"(partners more alike than pseudo-couples){': ' + ', '.join(alike) if alike else ''}"
                         + (f"; none could be: too few couples for any p after Holm to reach {ALPHA:g}"
                            if all(floors) else ""))  # each test's floor note: it cannot reach ALPHA after Holm
