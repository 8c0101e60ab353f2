"""Confidence intervals for the bench's comparisons, from the runs each cell recorded.

Every comparison the reports make is a ratio of two medians (allocator X against glibc, or
against the fastest). Its interval is a percentile bootstrap: each side's runs are resampled
with replacement, independently, and the ratio of the resampled medians is taken many times;
the 2.5th and 97.5th percentiles of those ratios bound the 95 % interval. The runs of a cell
were interleaved with the other allocators' (bench/run.py shuffles every round), which is
what makes them fair to resample side by side.

A difference counts only when the interval clears 1.0: X is faster than Y when the whole
interval of X/Y lies below 1. Otherwise the two tie, whatever the medians say. That is the
rule every "fastest", "lowest" and "swapped" of the reports and of scripts/compare.py uses.

Resampling is seeded from the data resampled, so a report is the same every time it is made
from the same records, and an interval asked for twice is computed once. Standard library only (`random`, `statistics`).
"""
import functools
import math
import random
import statistics

CONFIDENCE = 0.95
RESAMPLES = 2000
PEER = "<peer>"  # geomean_cis's ref for ratios to each workload's best *other* allocator


def _rng(*key):
    return random.Random("\x1f".join(str(k) for k in key))


def _bounds(values, conf=CONFIDENCE):
    """The central `conf` interval of a sample (inclusive quantiles)."""
    n = round(2 / (1 - conf))          # 0.95 -> 40 cut points of 2.5 % each
    cuts = statistics.quantiles(values, n=n, method="inclusive")
    return cuts[0], cuts[-1]


def usable(xs):
    """The numeric values of a run list; an interval needs two or more of them."""
    return [x for x in xs or [] if isinstance(x, (int, float)) and x > 0]


def ratio_ci(xs, ys, resamples=RESAMPLES, conf=CONFIDENCE):
    """(low, high) of median(xs) / median(ys), or None when a side has fewer than 2 runs."""
    return _ratio_ci(tuple(usable(xs)), tuple(usable(ys)), resamples, conf)


@functools.lru_cache(maxsize=4096)
def _ratio_ci(xs, ys, resamples, conf):
    if len(xs) < 2 or len(ys) < 2:
        return None
    rng = _rng("ratio", xs, ys)
    med = statistics.median
    ratios = [med(rng.choices(xs, k=len(xs))) / med(rng.choices(ys, k=len(ys))) for _ in range(resamples)]
    return _bounds(ratios, conf)


def separated(ci):
    """+1 when the interval of X/Y lies above 1 (X larger), -1 below (X smaller), 0 a tie."""
    if ci is None:
        return 0
    if ci[0] > 1.0:
        return 1
    if ci[1] < 1.0:
        return -1
    return 0


def ranking(samples):
    """Who is lowest among `samples` ({name: runs}), and whether that is a clear win.

    -> {"best": name of the lowest median, "clear": True when the interval of every other
    allocator against it lies above 1, "ties": the names whose interval against it does not}.
    None without samples."""
    meds = {n: statistics.median(usable(v)) for n, v in samples.items() if usable(v)}
    if not meds:
        return None
    best = min(meds, key=lambda n: (meds[n], n))
    ties = [n for n in meds if n != best and separated(ratio_ci(samples[n], samples[best])) <= 0]
    return {"best": best, "clear": not ties, "ties": sorted(ties)}


def geomean_cis(table, ref, resamples=RESAMPLES, conf=CONFIDENCE):
    """Intervals of each allocator's geometric mean of ratios, over a set of workloads.

    table: {workload: {allocator: runs}}; every allocator must have runs in every workload.
    ref: an allocator name (ratios to it), None (ratios to each workload's lowest median), or
    PEER (each allocator's ratio to the lowest median of the *others* in each workload: below 1
    is a lead, which a ratio to the lowest, 1.0 for the lowest itself, cannot show).
    One bootstrap replicate resamples the runs of every cell, takes every workload's medians,
    their ratios, and each allocator's geometric mean over the workloads; the best other
    allocator of a workload is taken again in each replicate, so a peer that ties for it adds
    its own noise to the interval.
    -> {allocator: (low, high) or None}; None where some cell has fewer than 2 runs, and (for
    PEER) where a workload has no other allocator."""
    if not table:
        return {}
    allocs = sorted({a for row in table.values() for a in row})
    cells = {(w, a): usable(runs) for w, row in table.items() for a, runs in row.items()}
    lonely = ref == PEER and any(len(row) < 2 for row in table.values())
    if lonely or any(len(v) < 2 for v in cells.values()):
        return {a: None for a in allocs}
    rng = _rng("geomean", ref, sorted((k, tuple(v)) for k, v in cells.items()))
    med = statistics.median
    reps = {a: [] for a in allocs}
    for _ in range(resamples):
        logs = {a: 0.0 for a in allocs}
        for w, row in table.items():
            m = {a: med(rng.choices(cells[(w, a)], k=len(cells[(w, a)]))) for a in row}
            base = None if ref == PEER else m[ref] if ref is not None else min(m.values())
            for a in row:
                b = base if base is not None else min(v for o, v in m.items() if o != a)
                logs[a] += math.log(m[a] / b)
        for a in allocs:
            reps[a].append(math.exp(logs[a] / len(table)))
    return {a: _bounds(reps[a], conf) for a in allocs}
