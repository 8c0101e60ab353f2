"""The profile format written by `TINYMALLOC_CONF=profile:PATH` (one JSON object per process):

  {"format": "tinymalloc-profile-1", "pid": 1234, "ppid": 1200, "exe": "/usr/bin/cc1",
   "ticks": 53211,
   "sizes": [[size, count, peak_live, live_at_exit, lifetime_sum, short_lived(, 1)], ...]}

A forked child (without exec) starts its counts afresh and its peaks from the blocks it
inherited, so its peak_live and live_at_exit may exceed its count.

A row describes one exact requested size (0 .. 65536); larger requests are pooled in rows whose
size is the power of two at or above them, marked by a 7th element 1. `ticks` is the number
of allocations the process made (the allocation clock); `lifetime_sum` sums, over freed
blocks, the ticks between allocation and free; `short_lived` counts freed blocks that lived
fewer than 64 ticks.

Merging several processes (a build): count, live_at_exit, lifetime_sum and short_lived are
summed; peak_live takes the maximum over processes (`peak_live`, a lower bound of the peak of
the processes together, and exactly the need of the largest single process) and the sum is
kept too (`peak_live_sum`, an upper bound of the concurrent peak).
"""
import glob
import json
import os

FORMAT = "tinymalloc-profile-1"
MAX_EXACT = 65536
SHORT_LIVED_TICKS = 64


class ProfileError(Exception):
    """A profile that cannot be read or breaks the format; the message names the file."""


class SizeRow:
    __slots__ = ("size", "count", "peak_live", "live_at_exit", "lifetime_sum", "short_lived", "pooled",
                 "peak_live_sum")

    def __init__(self, size, count, peak_live, live_at_exit, lifetime_sum, short_lived, pooled=False,
                 peak_live_sum=None):
        self.size, self.count, self.peak_live = size, count, peak_live
        self.live_at_exit, self.lifetime_sum, self.short_lived = live_at_exit, lifetime_sum, short_lived
        self.pooled = pooled
        self.peak_live_sum = peak_live if peak_live_sum is None else peak_live_sum

    def as_list(self):
        r = [self.size, self.count, self.peak_live, self.live_at_exit, self.lifetime_sum, self.short_lived]
        return r + [1] if self.pooled else r

    @property
    def freed(self):
        return max(0, self.count - self.live_at_exit)

    def mean_lifetime(self):
        """Mean lifetime of the freed blocks in ticks (allocations made meanwhile), None if none."""
        return self.lifetime_sum / self.freed if self.freed else None

    def __repr__(self):
        return f"SizeRow({self.as_list()!r})"


class Profile:
    """One process's profile, or several merged (then `processes` lists them)."""

    def __init__(self, rows, processes, ticks, source=None):
        self.rows = {(r.size, r.pooled): r for r in rows}
        self.processes = processes      # [{"pid", "ppid", "exe", "ticks", "file"}]
        self.ticks = ticks
        self.source = source

    def sizes(self):
        """Rows sorted by size (exact sizes first, then pooled ones)."""
        return sorted(self.rows.values(), key=lambda r: (r.pooled, r.size))

    def exact(self):
        return [r for r in self.sizes() if not r.pooled]

    def total_count(self):
        return sum(r.count for r in self.rows.values())

    def to_json(self):
        obj = {"format": FORMAT, "ticks": self.ticks, "sizes": [r.as_list() for r in self.sizes()]}
        if len(self.processes) == 1 and not self.processes[0].get("merged"):
            p = self.processes[0]
            obj.update({"pid": p.get("pid"), "ppid": p.get("ppid"), "exe": p.get("exe")})
            obj = {k: obj[k] for k in ("format", "pid", "ppid", "exe", "ticks", "sizes")}
        else:
            obj["merged"] = True
            obj["processes"] = [{k: p.get(k) for k in ("pid", "ppid", "exe", "ticks")} for p in self.processes]
            obj["peak_live_sum"] = [[r.size, r.peak_live_sum] + ([1] if r.pooled else [])
                                    for r in self.sizes()]
        return obj


def _int(v, what, where):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ProfileError(f"{where}: {what} must be a non-negative integer, got {v!r}")
    return v


def parse(obj, where="profile"):
    """A decoded JSON object -> Profile. Raises ProfileError naming what is wrong."""
    if not isinstance(obj, dict):
        raise ProfileError(f"{where}: expected a JSON object")
    if obj.get("format") != FORMAT:
        raise ProfileError(f"{where}: format is {obj.get('format')!r}, expected {FORMAT!r}")
    ticks = _int(obj.get("ticks"), "ticks", where)
    sizes = obj.get("sizes")
    if not isinstance(sizes, list):
        raise ProfileError(f"{where}: `sizes` must be a list of rows")
    rows, seen = [], set()
    for i, row in enumerate(sizes):
        w = f"{where}: sizes[{i}]"
        if not isinstance(row, list) or len(row) not in (6, 7):
            raise ProfileError(f"{w}: a row is [size, count, peak_live, live_at_exit, lifetime_sum, "
                               f"short_lived] (+ 1 when pooled), got {row!r}")
        size, count, peak, live, lsum, short = (_int(v, n, w) for v, n in zip(
            row[:6], ("size", "count", "peak_live", "live_at_exit", "lifetime_sum", "short_lived")))
        pooled = False
        if len(row) == 7:
            if row[6] not in (0, 1) or isinstance(row[6], bool):
                raise ProfileError(f"{w}: the 7th element marks a pooled row and must be 1, got {row[6]!r}")
            pooled = row[6] == 1
        if pooled and (size <= MAX_EXACT or size & (size - 1)):
            raise ProfileError(f"{w}: a pooled row's size must be a power of two above {MAX_EXACT}, got {size}")
        if not pooled and size > MAX_EXACT:
            raise ProfileError(f"{w}: size {size} above {MAX_EXACT} must be a pooled row (7th element 1)")
        # peak_live may exceed count: a forked child starts its counts afresh but keeps the
        # blocks it inherited live (they count in its peak and live_at_exit, not its count).
        if live > peak and not obj.get("merged"):   # merged: live is a sum, peak a max
            raise ProfileError(f"{w}: live_at_exit {live} exceeds peak_live {peak}")
        if short > count:
            raise ProfileError(f"{w}: short_lived {short} exceeds count {count}")
        if (size, pooled) in seen:
            raise ProfileError(f"{w}: size {size} appears twice")
        seen.add((size, pooled))
        rows.append(SizeRow(size, count, peak, live, lsum, short, pooled))
    if obj.get("merged"):
        procs = obj.get("processes")
        if not isinstance(procs, list):
            raise ProfileError(f"{where}: a merged profile lists its `processes`")
        byk = {(r.size, r.pooled): r for r in rows}
        for e in obj.get("peak_live_sum") or []:
            if isinstance(e, list) and len(e) in (2, 3):
                r = byk.get((e[0], len(e) == 3 and e[2] == 1))
                if r is not None:
                    r.peak_live_sum = _int(e[1], "peak_live_sum", where)
        procs = [dict(p, file=where) for p in procs if isinstance(p, dict)]
    else:
        for k in ("pid", "ppid"):
            if k in obj:
                _int(obj[k], k, where)
        procs = [{"pid": obj.get("pid"), "ppid": obj.get("ppid"), "exe": obj.get("exe"), "ticks": ticks,
                  "file": where}]
    return Profile(rows, procs, ticks, source=where)


def load_file(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}")
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ProfileError(f"{path}: not JSON ({e}); a process killed before exit writes no whole profile")
    return parse(obj, path)


def expand(paths):
    """Files, folders (their *.json) and glob patterns -> sorted list of files."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(glob.glob(os.path.join(p, "*.json")))
        elif any(c in p for c in "*?["):
            out += sorted(glob.glob(p))
        else:
            out.append(p)
    return out


def merge(profiles):
    """Merge per-process profiles: sums, and the max (and sum) of peak_live per size."""
    if not profiles:
        raise ProfileError("no profiles to merge")
    if len(profiles) == 1:
        return profiles[0]
    acc = {}
    for p in profiles:
        for key, r in p.rows.items():
            a = acc.get(key)
            if a is None:
                acc[key] = SizeRow(r.size, r.count, r.peak_live, r.live_at_exit, r.lifetime_sum, r.short_lived,
                                   r.pooled, r.peak_live_sum)
            else:
                a.count += r.count
                a.live_at_exit += r.live_at_exit
                a.lifetime_sum += r.lifetime_sum
                a.short_lived += r.short_lived
                a.peak_live = max(a.peak_live, r.peak_live)
                a.peak_live_sum += r.peak_live_sum
    procs = [q for p in profiles for q in p.processes]
    for q in procs:
        q.setdefault("merged", True)
    return Profile(list(acc.values()), procs, sum(p.ticks for p in profiles))


def load(paths, exe_filter=None):
    """Read every profile named by `paths` (files, folders, globs), keep those whose exe matches
    the regular expression exe_filter (if given), and merge them. -> (Profile, files)."""
    import re
    files = expand(paths)
    if not files:
        raise ProfileError(f"no profile files in {', '.join(paths)}")
    profs = [load_file(f) for f in files]
    if exe_filter:
        rx = re.compile(exe_filter)
        profs = [p for p in profs if any(rx.search(q.get("exe") or "") for q in p.processes)]
        if not profs:
            raise ProfileError(f"no profile's exe matches {exe_filter!r} (of {len(files)} files)")
    return merge(profs), files
