"""The search of --verify: configurations around the model's recommendation, measured side by
side with the default in one bench run, and the decision between them.

The model (classes.py) fits classes and preallocation to the profile's sizes; whether that
pays in time or memory is only known by measuring. So the neighbours of its answer are
measured too, each as a variant of the one frozen library:

  tuned         the recommendation
  classes-only  its classes, with the default preallocation (one page per class)
  fewer, more   the same fit with half and with twice the class budget
  small-8k      the same fit with small_max 8192, the default slab limit (when auto chose more)
  retain-more   tuned, keeping 4x as many empty slab pages and purging them 5x later
  retain-less   tuned, keeping a quarter of them and purging 4x sooner

The decision, for --objective time (default), rss or syscalls: a candidate qualifies when its
objective is lower than the default's with an interval that lies below 1, and no other
objective is higher beyond its interval. Over several workloads (--workloads) that is the
geometric mean of the ratios, and no workload may be worse on the objective. The intervals are
widened for the number of candidates (Bonferroni: 1 - 0.05/k), so that trying more of them
does not make a chance win likelier. syscalls are one strace count per variant and workload,
not a sample: lower means at most 0.95x the default's count. Of the qualifying candidates the
lowest objective ratio wins, RSS (then time) breaking ties. None qualifies: keep the defaults.
A profile with fewer than MIN_SLAB_REQUESTS requests in the slab tier is declined before any
measurement: there is nothing for the classes to fit.
"""
import math
import os
import sys

from . import classes as C

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench"))
import benchlib  # noqa: E402
import stats  # noqa: E402

DEFAULT = "tm-default"
MIN_SLAB_REQUESTS = 1000
# The allocator's defaults of the two slab-pool options (tinymalloc/src/options.c).
SLAB_RETAIN, SLAB_PURGE_DELAY_MS = 64, 1000
METRICS = {"time": ("times", "time_median_s"), "rss": ("rss_runs_kb", "rss_max_kb")}
OSCALLS = ("mmap", "munmap", "madvise", "mremap", "brk")
SYSCALL_MARGIN = 0.95
OBJECTIVES = ("time", "rss", "syscalls")


def too_few_requests(rec):
    """The reason to decline without measuring, or None."""
    n = rec["default"]["slab_requests"]
    if n < MIN_SLAB_REQUESTS:
        return (f"the profile has {n} requests the slab classes serve (fewer than {MIN_SLAB_REQUESTS}): "
                "no class-sensitive allocation to fit")
    return None


def candidates(prof, rec, fit):
    """[(name, TINYMALLOC_CONF)], the recommendation first, no configuration twice.
    fit(**overrides) -> the recommendation's conf with other recommend() arguments, or None."""
    k = rec["budget"]
    tail_more = f",slab_retain:{4 * SLAB_RETAIN},slab_purge_delay:{5 * SLAB_PURGE_DELAY_MS}"
    tail_less = f",slab_retain:{SLAB_RETAIN // 4},slab_purge_delay:{SLAB_PURGE_DELAY_MS // 4}"
    out = [("tuned", rec["conf"]),
           ("classes-only", "classes:" + "/".join(map(str, rec["classes"]))),
           ("fewer", fit(budget=max(1, k // 2))),
           ("more", fit(budget=min(C.MAX_CLASSES, 2 * k))),
           ("small-8k", fit(small_max=C.DEFAULT_SMALL_MAX)),
           ("retain-more", rec["conf"] + tail_more),
           ("retain-less", rec["conf"] + tail_less)]
    seen, keep = set(), []
    for name, conf in out:
        if conf and conf not in seen:
            seen.add(conf)
            keep.append((name, conf))
    return keep


def _oscalls(c):
    return sum(c.get(k) or 0 for k in OSCALLS) if c.get("mmap") is not None else None


def assess(by_wl, name, level):
    """One candidate against the default over the workloads. by_wl: {workload: {allocator: cell}}.
    -> {metric: {ratio, ci, per: {workload: (ratio, ci)}, reading}} for time and rss, and
    syscalls {ratio, per, reading}; failures: [..]."""
    out, failures = {}, []
    for w, cs in by_wl.items():
        for a in (DEFAULT, name):
            if cs[a]["status"] != "ok":
                failures.append(f"{w} x {a}: {cs[a].get('reason')}")
    if failures:
        return {"failures": failures}
    for metric, (runs, key) in METRICS.items():
        per = {}
        for w, cs in by_wl.items():
            d, c = cs[DEFAULT], cs[name]
            r = c[key] / d[key] if c.get(key) and d.get(key) else None
            per[w] = (r, stats.ratio_ci(c.get(runs), d.get(runs), conf=level) if r else None)
        if any(r is None for r, _ in per.values()):
            out[metric] = {"ratio": None, "ci": None, "per": per, "reading": "not measured"}
            continue
        table = {w: {DEFAULT: cs[DEFAULT].get(runs), name: cs[name].get(runs)} for w, cs in by_wl.items()}
        ci = stats.geomean_cis(table, DEFAULT, conf=level).get(name)
        ratio = benchlib.geomean([r for r, _ in per.values()])
        sep = stats.separated(ci)
        worse = [w for w, (_, wci) in per.items() if stats.separated(wci) > 0]
        out[metric] = {"ratio": ratio, "ci": ci, "per": per, "worse_on": worse,
                       "reading": "no interval (too few runs)" if ci is None else
                       {-1: "lower", 1: "higher", 0: "tie"}[sep]}
    per = {}
    for w, cs in by_wl.items():
        a, b = _oscalls(cs[DEFAULT]), _oscalls(cs[name])
        per[w] = (None if a is None or b is None else b / a if a else 1.0 if b == 0 else math.inf, a, b)
    rs = [r for r, _, _ in per.values()]
    if any(r is None for r in rs):
        out["syscalls"] = {"ratio": None, "per": per, "reading": "not measured"}
    else:
        g = benchlib.geomean([max(r, 1e-9) for r in rs])   # an infinite ratio (0 -> some calls) stays infinite
        out["syscalls"] = {"ratio": g, "per": per, "worse_on": [w for w, (r, _, _) in per.items() if r > 1 / SYSCALL_MARGIN],
                           "reading": "lower" if g <= SYSCALL_MARGIN else "higher" if g >= 1 / SYSCALL_MARGIN else "tie"}
    out["failures"] = []
    return out


def qualifies(a, objective):
    """Why candidate assessment `a` does not qualify for `objective`, or None when it does."""
    if a.get("failures"):
        return "failed: " + "; ".join(a["failures"])
    o = a.get(objective) or {}
    if o.get("reading") != "lower":
        return f"{objective} {o.get('reading', 'not measured')}"
    if o.get("worse_on"):
        return f"{objective} worse on {', '.join(o['worse_on'])}"
    for other in OBJECTIVES:
        if other != objective and (a.get(other) or {}).get("reading") == "higher":
            return f"{other} higher"
    return None


def decide(by_wl, cands, objective):
    """-> {choice: (name, conf) or None, level, assessed: [(name, conf, assessment, why not)]}."""
    level = 1 - (1 - stats.CONFIDENCE) / max(1, len(cands))
    assessed = []
    for name, conf in cands:
        a = assess(by_wl, name, level)
        assessed.append((name, conf, a, qualifies(a, objective)))
    ok = [(n, c, a) for n, c, a, why in assessed if why is None]

    def key(item):
        a = item[2]
        tie_break = "rss" if objective != "rss" else "time"
        return (a[objective]["ratio"], (a.get(tie_break) or {}).get("ratio") or math.inf, item[0])
    best = min(ok, key=key) if ok else None
    return {"choice": (best[0], best[1]) if best else None, "level": level, "objective": objective,
            "assessed": assessed}
