"""Text output of tune-slabs: the recommendation (terminal) and results/tuning/<workload>.md."""
from . import classes as C
from . import verify as V


def pct(x):
    return f"{100 * x:.2f} %"


def kib(n):
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def profile_summary(prof, files):
    exes = {}
    for p in prof.processes:
        e = (p.get("exe") or "?").rsplit("/", 1)[-1]
        exes[e] = exes.get(e, 0) + 1
    top = sorted(exes.items(), key=lambda kv: -kv[1])
    rows = prof.sizes()
    lines = [f"{len(prof.processes)} process(es) from {len(files)} file(s): "
             + ", ".join(f"{e} x{n}" if n > 1 else e for e, n in top[:8]) + (" ..." if len(top) > 8 else ""),
             f"{prof.total_count()} requests of {len(rows)} distinct sizes "
             f"({sum(1 for r in rows if r.pooled)} pooled rows above 64 KiB); {prof.ticks} allocation ticks"]
    return lines


def top_sizes(prof, n=12):
    rows = sorted(prof.sizes(), key=lambda r: -r.count)[:n]
    out = ["| size | requests | peak live (max over processes) | live at exit | mean lifetime (ticks) | short-lived |",
           "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ml = r.mean_lifetime()
        sl = f"{100 * r.short_lived / r.freed:.0f} %" if r.freed else "-"
        size = f">{r.size // 2} (pooled)" if r.pooled else str(r.size)
        out.append(f"| {size} | {r.count} | {r.peak_live} | {r.live_at_exit} | "
                   f"{'-' if ml is None else f'{ml:.0f}'} | {sl} |")
    return out


def comparison_table(rec):
    d, t = rec["default"], rec["tuned"]
    dpages = sum(1 for c in d["classes"])  # default: one page per class
    rows = [
        ("classes (used by the profile)", f"{d['nclasses']} ({d['classes_used']})", f"{t['nclasses']} ({t['classes_used']})"),
        ("small_max (largest slab size)", str(d["small_max"]), str(t["small_max"])),
        ("requests served from slabs", str(d["slab_requests"]), str(t["slab_requests"])),
        ("internal fragmentation, weighted by count", pct(d["frag_count"]), pct(t["frag_count"])),
        ("internal fragmentation, weighted by peak live", pct(d["frag_peak"]), pct(t["frag_peak"])),
        ("committed at peak / requested - 1 (page level, model)", pct(d["frag_pages"]), pct(t["frag_pages"])),
        ("requests above small_max (leave the slab tier)", str(d["huge_requests"]), str(t["huge_requests"])),
        ("preallocated pages", f"{dpages} ({kib(dpages * C.PAGE)})",
         f"{sum(rec['prealloc_pages'])} ({kib(rec['prealloc_bytes'])})"),
    ]
    out = ["| per the profile | default | tuned |", "|---|---:|---:|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return out


def class_table(rec):
    t = rec["tuned"]["per_class"]
    out = ["| class | sizes served | requests | peak live (sum of its sizes) | prealloc pages | prealloc blocks |",
           "|---:|---:|---:|---:|---:|---:|"]
    for c, pages, cnt in zip(rec["classes"], rec["prealloc_pages"], rec["prealloc"]):
        pc = t[c]
        out.append(f"| {c} | {pc['sizes']} | {pc['count']} | {pc['peak']} | {pages} | {cnt} |")
    return out


def recommendation_text(rec, prof, files):
    out = profile_summary(prof, files)
    out.append("")
    out.append(f"weight {rec['weight']}, at most {rec['budget']} classes, consecutive classes within "
               + (f"x{rec['max_ratio']:g}" if rec["max_ratio"] > 0 else "any ratio")
               + f", small_max {rec['small_max']}, prealloc budget {kib(rec['prealloc_budget'])}"
               + (" (CAPPED: the peak does not fit)" if rec["prealloc_capped"] else ""))
    out.append("")
    out.append(f"TINYMALLOC_CONF={rec['conf']}")
    out.append("")
    out += comparison_table(rec)
    out.append("")
    out += class_table(rec)
    return "\n".join(out)


def fmt(v, key):
    if v is None:
        return "-"
    if key in ("wall_s", "user_s", "sys_s"):
        return f"{v:.3f}"
    return f"{v:.0f}"


LABELS = {
    "wall_s": "time, wall (s, monotonic clock around the run)",
    "user_s": "time, user CPU (s, GNU time: 10 ms steps)",
    "sys_s": "time, system CPU (s, GNU time: 10 ms steps)",
    "max_rss_kb": "peak RSS, largest process (KiB)",
    "tree_peak_sum_kb": "peak RSS, sum over processes (KiB, sampled 50 ms)",
    "minflt": "minor page faults",
}


def measured_table(meas):
    summ = V.summarise(meas)
    out = ["| measured | default: median [min - max] | tuned: median [min - max] | tuned / default, paired: median [min - max] | reading |",
           "|---|---:|---:|---:|---|"]
    for key in ("wall_s", "user_s", "sys_s", "max_rss_kb", "tree_peak_sum_kb", "minflt"):
        s = summ[key]
        a, b, r = s["default"], s["tuned"], s["ratio"]
        if a["median"] is None and b["median"] is None:
            continue
        rr = "-" if r["median"] is None else f"{r['median']:.3f} [{r['min']:.3f} - {r['max']:.3f}]"
        out.append(f"| {LABELS[key]} | {fmt(a['median'], key)} [{fmt(a['min'], key)} - {fmt(a['max'], key)}] | "
                   f"{fmt(b['median'], key)} [{fmt(b['min'], key)} - {fmt(b['max'], key)}] | {rr} | "
                   f"{V.verdict(r)} |")
    st = meas.get("strace") or {}
    if st:
        out.append("")
        out.append("| OS calls, one run each | default | tuned |")
        out.append("|---|---:|---:|")
        for k in ("mmap", "munmap", "madvise", "mremap", "brk"):
            out.append(f"| {k} (strace -f -c, whole program) | {st.get('default', {}).get('oscalls', {}).get(k, '-')} | "
                       f"{st.get('tuned', {}).get('oscalls', {}).get(k, '-')} |")
        for k in ("mmap", "munmap", "madvise", "mremap"):
            out.append(f"| {k} (tinymalloc's own count, stats) | "
                       f"{st.get('default', {}).get('stats', {}).get('os', {}).get(k, '-')} | "
                       f"{st.get('tuned', {}).get('stats', {}).get('os', {}).get(k, '-')} |")
        for k, lab in (("slab_allocs", "slab allocations (stats)"), ("huge_allocs", "huge allocations (stats)"),
                       ("slab_peak_bytes", "sum of class peak bytes over classes and processes (stats)")):
            out.append(f"| {lab} | {st.get('default', {}).get('stats', {}).get(k, '-')} | "
                       f"{st.get('tuned', {}).get('stats', {}).get(k, '-')} |")
    return out, summ
