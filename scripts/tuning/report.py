"""Text output of tune-slabs: the recommendation (terminal) and results/tuning/<workload>.md."""
from . import classes as C


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


def _ratio(o):
    if not o or o.get("ratio") is None:
        return "-"
    ci = o.get("ci")
    return f"{o['ratio']:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def decision_text(d):
    """The answer of --verify in words (search.decide's result, or a decline before measuring)."""
    if d.get("declined"):
        return ["**Keep the defaults**: " + d["declined"] + ". Nothing was measured."]
    if d.get("choice"):
        name, conf = d["choice"]
        a = next(a for n, _, a, _ in d["assessed"] if n == name)
        o = a[d["objective"]]
        return [f"**{name}** lowers {d['objective']} to {_ratio(o)} of the default's, and no other objective is "
                "higher beyond its interval:", "", "```", f"TINYMALLOC_CONF={conf}", "```"]
    return [f"**Keep the defaults**: none of the {len(d['assessed'])} candidates lowered {d['objective']} beyond "
            "its interval without raising another objective; each one's reason is in the table below."]


def candidates_table(d):
    out = ["| candidate | time | peak RSS | OS calls (strace) | verdict | TINYMALLOC_CONF |", "|---|---:|---:|---:|---|---|"]
    for name, conf, a, why in d["assessed"]:
        if a.get("failures"):
            out.append(f"| {name} | FAIL | FAIL | FAIL | {'; '.join(a['failures'])} | `{conf}` |")
            continue
        cells = [f"{_ratio(a.get(m))} {(a.get(m) or {}).get('reading', '')}".strip() for m in ("time", "rss", "syscalls")]
        verdict = ("**chosen**" if d.get("choice") and d["choice"][0] == name else "qualifies") if why is None else why
        out.append(f"| {name} | " + " | ".join(cells) + f" | {verdict} | `{conf}` |")
    return out


def per_workload_table(d, workloads):
    m = d["objective"]
    out = ["| candidate | " + " | ".join(workloads) + " |", "|---|" + "---:|" * len(workloads)]
    for name, _, a, _ in d["assessed"]:
        per = (a.get(m) or {}).get("per") or {}
        row = []
        for w in workloads:
            v = per.get(w)
            if not v or v[0] is None:
                row.append("-")
            elif m == "syscalls":
                row.append(f"{v[0]:.3f} ({v[1]} -> {v[2]})")
            else:
                row.append(f"{v[0]:.3f}" + (f" ({v[1][0]:.3f}-{v[1][1]:.3f})" if v[1] else ""))
        out.append(f"| {name} | " + " | ".join(row) + " |")
    return out
