"""Slab class arithmetic of tinymalloc (mirrors tinymalloc/src/options.c and slab.c), the exact
class optimiser, preallocated counts and the fragmentation figures.

Allocator facts used here (read from the sources, not guessed):
  * class sizes are multiples of 16, increasing, at most 64 of them, each <= 16384;
  * with an explicit class list the largest class is small_max: larger requests leave the slab
    tier (to the next tier: one mapping per block before the arena tier of 7ca0638);
  * a request of n bytes gets the smallest class >= n (malloc(0) gets the first class);
  * a slab page is 64 KiB and holds floor(65536 / size) blocks; a page is carved (and so
    touched, committed) 8 KiB worth of blocks at a time (at least one block);
  * `prealloc` counts blocks per class; the allocator reserves ceil(count / per_page) pages
    for the class and keeps that many emptied pages in the class's pool instead of handing
    them back (and, past slab_retain, purging them with madvise after slab_purge_delay).
"""
import bisect
import math

ALIGN = 16
PAGE = 65536
OS_PAGE = 4096
CARVE = 8192
MAX_CLASSES = 64
SMALL_MAX_LIMIT = 16384
DEFAULT_TINY_MAX = 128
DEFAULT_SMALL_MAX = 8192
EIGHTH_MIN = 256  # TM_EIGHTH_MIN of options.c


def default_classes(tiny_max=DEFAULT_TINY_MAX, small_max=DEFAULT_SMALL_MAX):
    """derive_classes() of options.c: 16-byte steps to tiny_max, then four per doubling, and
    from EIGHTH_MIN one more at an eighth past each power of two."""
    tiny_max = min(tiny_max, small_max)
    out = list(range(ALIGN, tiny_max + 1, ALIGN))
    s = out[-1]
    while s < small_max and len(out) < MAX_CLASSES:
        p2 = 1 << (s.bit_length() - 1)
        step = max(ALIGN, p2 // 4)
        s = min(small_max, s + p2 // 8 if s == p2 and p2 >= EIGHTH_MIN else (s // step + 1) * step)
        out.append(s)
    return out


def default_prealloc(classes):
    """One page per class: the allocator's default."""
    return [PAGE // c for c in classes]


def check_classes(classes):
    """None if the allocator accepts the list, else why not (the messages of options.c)."""
    if not classes:
        return "no classes"
    if len(classes) > MAX_CLASSES:
        return f"at most {MAX_CLASSES} classes"
    for i, c in enumerate(classes):
        if c <= 0 or c % ALIGN:
            return "class sizes must be multiples of 16"
        if c > SMALL_MAX_LIMIT:
            return "class sizes must be at most 16384"
        if i and c <= classes[i - 1]:
            return "class sizes must increase"
    return None


def round16(n):
    return max(ALIGN, (n + ALIGN - 1) // ALIGN * ALIGN)


def class_of(classes, n):
    """The class serving a request of n bytes, None above the largest class."""
    i = bisect.bisect_left(classes, n)
    return classes[i] if i < len(classes) else None


def per_page(c):
    return PAGE // c


def _up(n, q):
    return (n + q - 1) // q * q


def committed_bytes(c, blocks):
    """Bytes of slab memory committed to hold `blocks` live blocks of class c packed densely:
    whole pages as far as filled (up to the last block of the page, in 4 KiB OS pages), the
    last page as far as carved (8 KiB worth of blocks at a time)."""
    if blocks <= 0:
        return 0
    pp = PAGE // c
    ext = max(1, CARVE // c)
    full, rem = divmod(blocks, pp)
    total = full * _up(pp * c, OS_PAGE)
    if rem:
        total += _up(min(pp, _up(rem, ext)) * c, OS_PAGE)
    return total


# ---------------------------------------------------------------------------------------------
# figures for one class list

def evaluate(classes, profile):
    """Fragmentation and tier figures of a class list for a profile (a profile.Profile)."""
    top = classes[-1]
    req_c = waste_c = req_p = waste_p = 0
    slab_requests = huge_requests = huge_freed = huge_live_peak = 0
    per_class = {c: {"count": 0, "peak": 0, "req_peak_bytes": 0, "sizes": 0} for c in classes}
    for r in profile.sizes():
        if r.pooled or r.size > top:
            huge_requests += r.count
            huge_freed += r.freed
            huge_live_peak += r.peak_live
            continue
        c = class_of(classes, r.size)
        slab_requests += r.count
        req_c += r.count * r.size
        waste_c += r.count * (c - r.size)
        req_p += r.peak_live * r.size
        waste_p += r.peak_live * (c - r.size)
        pc = per_class[c]
        pc["count"] += r.count
        pc["peak"] += r.peak_live
        pc["req_peak_bytes"] += r.peak_live * r.size
        pc["sizes"] += 1
    committed = sum(committed_bytes(c, pc["peak"]) for c, pc in per_class.items())
    return {
        "classes": list(classes),
        "nclasses": len(classes),
        "classes_used": sum(1 for pc in per_class.values() if pc["count"]),
        "small_max": top,
        "slab_requests": slab_requests,
        "requested_bytes": req_c,
        "wasted_bytes": waste_c,
        "frag_count": waste_c / req_c if req_c else 0.0,
        "peak_requested_bytes": req_p,
        "peak_wasted_bytes": waste_p,
        "frag_peak": waste_p / req_p if req_p else 0.0,
        "peak_committed_bytes": committed,
        "frag_pages": (committed - req_p) / req_p if req_p else 0.0,
        "huge_requests": huge_requests,
        "huge_os_calls": huge_requests + huge_freed,   # if each had its own mapping (the old huge tier)
        "per_class": per_class,
    }


# ---------------------------------------------------------------------------------------------
# the optimiser

class Infeasible(Exception):
    pass


def optimise(hist, top, budget, weight="peak", max_ratio=2.0, fillers=()):
    """Exact choice of at most `budget` classes, the largest being `top`, for a histogram.

    hist: {size: (count, peak_live)} of the slab-served sizes (all <= top).
    weight: "count" minimises sum count(s) * (class(s) - s): bytes wasted over all requests;
            "peak" minimises committed_bytes at the peak - requested bytes at the peak, i.e.
            sum over classes of committed_bytes(c, sum of peak_live of the sizes it serves) -
            sum peak_live(s) * s: rounding waste plus page-level waste.
    max_ratio: if > 0, every class is at most max_ratio times the one below it and the first
            is at most 16 * max_ratio, so a size the profile never saw is rounded up by less
            than that factor (2: under 50 % waste, as the default classes guarantee).
    fillers: class sizes offered besides the rounded request sizes (the default classes), so
            the ratio constraint can always be met.

    Candidates are the request sizes rounded up to 16, the fillers and top. A class that is
    not a candidate can be lowered to the largest candidate it serves without adding waste, so
    without the ratio constraint the optimum over candidates is the optimum over all class
    lists; with it, it is the optimum over lists built from candidates. Dynamic programming:
    f[k][j] = least cost of serving every size <= cand[j] with k classes, the largest cand[j];
    f[k][j] = min over i < j of f[k-1][i] + cost(i, j), cost(i, j) being the cost of class
    cand[j] serving the sizes in (cand[i], cand[j]]. O(budget * n^2) with O(1) segment costs
    from prefix sums. Ties go to fewer classes. -> (classes, cost).
    """
    if weight not in ("count", "peak"):
        raise ValueError(f"weight must be count or peak, not {weight!r}")
    if top % ALIGN or top > SMALL_MAX_LIMIT or top < ALIGN:
        raise ValueError(f"top class {top}: a multiple of 16 from 16 to {SMALL_MAX_LIMIT}")
    budget = min(budget, MAX_CLASSES)
    agg = {}
    for s, (cnt, peak) in hist.items():
        if s > top:
            raise ValueError(f"size {s} above the top class {top}")
        r = round16(s)
        a = agg.setdefault(r, [0, 0, 0, 0])
        a[0] += cnt
        a[1] += cnt * s
        a[2] += peak
        a[3] += peak * s
    cand = sorted(set(agg) | {f for f in fillers if f <= top} | {top})
    n = len(cand)
    # prefix sums, index j+1 covers cand[0..j]
    W = [0] * (n + 1)
    S = [0] * (n + 1)
    P = [0] * (n + 1)
    Q = [0] * (n + 1)
    for j, c in enumerate(cand):
        a = agg.get(c, (0, 0, 0, 0))
        W[j + 1], S[j + 1] = W[j] + a[0], S[j] + a[1]
        P[j + 1], Q[j + 1] = P[j] + a[2], Q[j] + a[3]

    # Ties of the chosen weight are broken by the other one: the key is primary * M + secondary
    # with M above any secondary total, so sums compare lexicographically and stay exact.
    def cost_count(i, j):  # sizes in (cand[i], cand[j]], i = -1: from the start
        return cand[j] * (W[j + 1] - W[i + 1]) - (S[j + 1] - S[i + 1])

    def cost_peak(i, j):
        return committed_bytes(cand[j], P[j + 1] - P[i + 1]) - (Q[j + 1] - Q[i + 1])

    if weight == "count":
        M = sum(committed_bytes(c, P[n]) for c in cand) + 1
        def cost(i, j):
            return cost_count(i, j) * M + cost_peak(i, j)
    else:
        M = top * W[n] + 1
        def cost(i, j):
            return cost_peak(i, j) * M + cost_count(i, j)

    INF = float("inf")
    first_limit = ALIGN * max_ratio if max_ratio > 0 else INF
    # lo[j]: the smallest i whose class may sit below cand[j] under the ratio constraint
    if max_ratio > 0:
        lo = [bisect.bisect_left(cand, c / max_ratio) for c in cand]
    else:
        lo = [0] * n
    f_prev = [cost(-1, j) if cand[j] <= first_limit else INF for j in range(n)]
    back = [[-1] * n]
    best_k, best = 1, f_prev[n - 1]
    for k in range(2, budget + 1):
        f = [INF] * n
        arg = [-1] * n
        for j in range(k - 1, n):
            bj, bi = INF, -1
            for i in range(max(lo[j], k - 2), j):
                fi = f_prev[i]
                if fi == INF:
                    continue
                v = fi + cost(i, j)
                if v < bj:
                    bj, bi = v, i
            f[j], arg[j] = bj, bi
        back.append(arg)
        if f[n - 1] < best:
            best_k, best = k, f[n - 1]
        f_prev = f
        if all(v == INF for v in f):
            break
    if best == INF:
        raise Infeasible(f"no list of at most {budget} classes up to {top} keeps consecutive classes "
                         f"within a factor {max_ratio:g}; raise --classes or lower --max-ratio (0: off)")
    # walk back
    out, j, k = [], n - 1, best_k
    while k >= 1:
        out.append(cand[j])
        j = back[k - 1][j]
        k -= 1
    out.reverse()
    return out, best // M


def objective(classes, hist, weight):
    """The optimiser's cost of a given class list (to compare with the default)."""
    top = classes[-1]
    per = {}
    cost = 0
    for s, (cnt, peak) in hist.items():
        if s > top:
            continue
        c = class_of(classes, s)
        if weight == "count":
            cost += cnt * (c - s)
        else:
            per[c] = per.get(c, 0) + peak
            cost -= peak * s
    if weight == "peak":
        cost += sum(committed_bytes(c, p) for c, p in per.items())
    return cost


# ---------------------------------------------------------------------------------------------
# preallocation

def prealloc_counts(classes, profile, budget_bytes):
    """Blocks to preallocate per class: enough whole pages for the sum of the peak live blocks
    of the sizes the class serves (per process: merged profiles carry the max over processes),
    so the program's peak fits its clusters. If the pages together exceed budget_bytes, every
    class's pages are scaled down in proportion (a class that has any use keeps one page).
    -> (counts, pages, need, capped)."""
    need = {c: 0 for c in classes}
    for r in profile.sizes():
        if r.pooled or r.size > classes[-1]:
            continue
        need[class_of(classes, r.size)] += r.peak_live
    pages = {c: math.ceil(need[c] / per_page(c)) for c in classes}
    total = sum(pages.values()) * PAGE
    capped = False
    if total > budget_bytes:
        capped = True
        limit = max(1, budget_bytes // PAGE)
        scale = limit / sum(pages.values())
        pages = {c: (max(1, int(p * scale)) if p else 0) for c, p in pages.items()}
        # the floor of one page per used class may still overshoot: trim the largest
        while sum(pages.values()) > limit and max(pages.values()) > 1:
            c = max(pages, key=lambda k: pages[k])
            pages[c] -= 1
    counts = [pages[c] * per_page(c) for c in classes]
    return counts, [pages[c] for c in classes], [need[c] for c in classes], capped


def conf_string(classes, prealloc):
    return "classes:" + "/".join(map(str, classes)) + ",prealloc:" + "/".join(map(str, prealloc))


# ---------------------------------------------------------------------------------------------
# the whole recommendation

def histogram(profile, top):
    return {r.size: (r.count, r.peak_live) for r in profile.sizes() if not r.pooled and r.size <= top}


def choose_top(profile, small_max):
    """small_max 'auto': keep the default boundary 8192, or move it up to cover the largest
    requested size <= 16384 (chosen when every request above the boundary cost a mapping)."""
    if small_max != "auto":
        return int(small_max)
    largest = max((r.size for r in profile.sizes() if not r.pooled and r.size <= SMALL_MAX_LIMIT), default=0)
    return max(DEFAULT_SMALL_MAX, round16(largest))


def recommend(profile, budget=None, weight="peak", small_max="auto", max_ratio=2.0,
              prealloc_budget=64 << 20, prealloc=True):
    defaults = default_classes()
    if budget is None:
        budget = len(defaults)
    top = choose_top(profile, small_max)
    hist = histogram(profile, top)
    fillers = default_classes(small_max=top) if max_ratio > 0 else ()
    tuned, cost = optimise(hist, top, budget, weight, max_ratio, fillers)
    counts, pages, need, capped = prealloc_counts(tuned, profile, prealloc_budget)
    conf = conf_string(tuned, counts)
    if not prealloc:   # classes only: the allocator's default of one page per class
        counts, pages, capped = default_prealloc(tuned), [1] * len(tuned), False
        conf = "classes:" + "/".join(map(str, tuned))
    return {
        "weight": weight,
        "budget": budget,
        "max_ratio": max_ratio,
        "small_max": top,
        "prealloc_budget": prealloc_budget,
        "classes": tuned,
        "prealloc": counts,
        "prealloc_pages": pages,
        "prealloc_need": need,
        "prealloc_capped": capped,
        "prealloc_bytes": sum(pages) * PAGE,
        "conf": conf,
        "prealloc_fitted": prealloc,
        "objective": {"tuned": cost, "default": objective(defaults, histogram(profile, defaults[-1]), weight)},
        "default": evaluate(defaults, profile),
        "tuned": evaluate(tuned, profile),
    }
