"""Input generators of the control workloads (sqlite, ghostscript, z3), used by prepare.py.

Every input is deterministic (own LCG, no `random`), so the same file comes out on every
machine. Where the expected output can be computed here independently of the program (sqlite's
query results, z3's sat/unsat answers), it is; ghostscript's reference is a rendering made at
prepare time without any preloaded allocator (prepare.py).
"""
import os

MASK = (1 << 48) - 1


class Lcg:
    def __init__(self, seed):
        self.s = seed & MASK

    def __call__(self, n):
        self.s = (self.s * 25214903917 + 11) & MASK
        return (self.s >> 16) % n


# ---- sqlite ------------------------------------------------------------------------------
SQLITE_PARAMS = {  # rows inserted, rounds of the query block
    "default": (150_000, 36),
    "quick": (20_000, 2),
    "tiny": (2_000, 1),
}
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def write_sqlite(outdir, scale):
    """Write <scale>.sql and <scale>.expected (the exact stdout of `sqlite3 -batch`)."""
    nrows, rounds = SQLITE_PARAMS[scale]
    r = Lcg(7)
    rows = []
    for i in range(1, nrows + 1):
        grp = r(97)
        name = WORDS[r(len(WORDS))] + str(r(500))
        val = r(100000)
        note = "-".join(WORDS[r(len(WORDS))] for _ in range(1 + r(8)))
        rows.append([i, grp, name, val, note])
    sql = ["PRAGMA cache_size=-65536;", "CREATE TABLE items(id INTEGER PRIMARY KEY, grp INTEGER, "
           "name TEXT, val INTEGER, note TEXT);", "BEGIN;"]
    for k in range(0, nrows, 50):
        vals = ",".join(f"({i},{g},'{n}',{v},'{t}')" for i, g, n, v, t in rows[k:k + 50])
        sql.append(f"INSERT INTO items VALUES {vals};")
    sql.append("COMMIT;")
    sql.append("CREATE INDEX items_grp ON items(grp);")
    sql.append("CREATE INDEX items_name ON items(name, id);")
    exp = []

    def q(stmt, result_rows):
        sql.append(stmt)
        exp.extend("|".join(str(c) for c in row) for row in result_rows)

    for rnd in range(rounds):
        # an update that each round changes, so rounds do not repeat cached answers
        m = 7 + rnd
        sql.append(f"UPDATE items SET val = (val * 3 + {rnd}) % 100003 WHERE id % {m} = 0;")
        for row in rows:
            if row[0] % m == 0:
                row[3] = (row[3] * 3 + rnd) % 100003
        # group by with an index
        agg = {}
        for _, g, _, v, _ in rows:
            c, s = agg.get(g, (0, 0))
            agg[g] = (c + 1, s + v)
        q("SELECT grp, COUNT(*), SUM(val) FROM items GROUP BY grp ORDER BY grp;",
          [(g, c, s) for g, (c, s) in sorted(agg.items())])
        # self-join on the name index: pairs sharing a name
        byname = {}
        for _, _, n, _, _ in rows:
            byname[n] = byname.get(n, 0) + 1
        q("SELECT COUNT(*) FROM items a JOIN items b ON a.name = b.name AND a.id < b.id;",
          [(sum(c * (c - 1) // 2 for c in byname.values()),)])
        # sort without an index (the sorter's memory), strings built per row
        top = sorted(rows, key=lambda row: (row[4], row[0]))[:5]
        q("SELECT id, length(note || name) FROM items ORDER BY note, id LIMIT 5;",
          [(row[0], len(row[4] + row[2])) for row in top])
        # a temporary table built from a join and a recursive CTE, aggregated, dropped
        lim = 1000 + 100 * rnd
        sql.append(f"CREATE TEMP TABLE t AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL "
                   f"SELECT x + 1 FROM n WHERE x < {lim}) SELECT x, grp, val FROM n JOIN items "
                   f"ON items.id = n.x * 3;")
        sel = [(x, rows[3 * x - 1][1], rows[3 * x - 1][3]) for x in range(1, lim + 1) if 3 * x <= nrows]
        q("SELECT COUNT(*), SUM(x * grp), SUM(val % 1000) FROM t;",
          [(len(sel), sum(x * g for x, g, _ in sel) if sel else "", sum(v % 1000 for _, _, v in sel) if sel else "")])
        sql.append("DROP TABLE t;")
        # names with the most rows
        top = sorted(byname.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        q("SELECT name, COUNT(*) AS c FROM items GROUP BY name ORDER BY c DESC, name LIMIT 3;", top)
    dmod = 11
    sql.append(f"DELETE FROM items WHERE val % {dmod} = 0;")
    rows = [row for row in rows if row[3] % dmod != 0]
    q("SELECT COUNT(*), SUM(val), SUM(length(note)) FROM items;",
      [(len(rows), sum(row[3] for row in rows), sum(len(row[4]) for row in rows))])
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{scale}.sql")
    with open(path, "w") as fh:
        fh.write("\n".join(sql) + "\n")
    with open(os.path.join(outdir, f"{scale}.expected"), "w") as fh:
        fh.write("\n".join(exp) + "\n")
    return path


# ---- ghostscript -------------------------------------------------------------------------
GS_ARGS = "-sDEVICE=ppmraw -r110"
GS_PAGES = {"default": 120, "quick": 10, "tiny": 1}

PS_PROLOG = """%!PS-Adobe-3.0
%%Title: tinymalloc bench: generated document
%%Pages: (atend)
%%EndComments
/tree { % len depth tree -
  dup 0 gt {
    gsave 1 index 0 rlineto currentpoint stroke translate 0 0 moveto
    25 rotate 1 index 0.72 mul 1 index 1 sub tree
    -50 rotate 1 index 0.68 mul 1 index 1 sub tree
    grestore
  } if pop pop
} bind def
/fonts [/Times-Roman /Helvetica-Bold /Courier /Palatino-Italic /NewCenturySchlbk-Roman] def
"""


def write_postscript(outdir, scale):
    r = Lcg(11)
    out = [PS_PROLOG]
    for page in range(1, GS_PAGES[scale] + 1):
        out.append(f"%%Page: {page} {page}\ngsave")
        # filled and stroked random curves
        for _ in range(160):
            out.append(f"{r(1000) / 1000} {r(1000) / 1000} {r(1000) / 1000} setrgbcolor "
                       f"{r(600)} {r(800)} moveto "
                       + " ".join(f"{r(600)} {r(800)} {r(600)} {r(800)} {r(600)} {r(800)} curveto"
                                  for _ in range(3))
                       + " closepath " + ("fill" if r(2) else f"{1 + r(4)} setlinewidth stroke"))
        # text in several fonts, rotated
        for _ in range(40):
            font = r(5)
            words = " ".join(WORDS[r(len(WORDS))] for _ in range(3 + r(6)))
            out.append(f"gsave fonts {font} get findfont {6 + r(30)} scalefont setfont "
                       f"{r(500)} {r(780)} translate {r(360)} rotate 0 0 moveto ({words}) show grestore")
        # recursive trees
        for _ in range(6):
            out.append(f"gsave 0 {r(1000) / 1000} 0 setrgbcolor 0.5 setlinewidth {50 + r(500)} "
                       f"{r(300)} translate 90 rotate 0 0 moveto {30 + r(40)} {8 + r(3)} tree grestore")
        # a clipped gradient made of many thin rectangles
        out.append(f"gsave newpath 300 400 {80 + r(120)} 0 360 arc clip")
        out.append("0 1 199 { dup 200 div 0.3 1 sethsbcolor 3 mul 150 add 200 3 400 rectfill } for grestore")
        out.append("grestore showpage")
    out.append("%%Trailer\n%%EOF\n")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{scale}.ps")
    with open(path, "w") as fh:
        fh.write("\n".join(out))
    return path


# ---- z3 ----------------------------------------------------------------------------------
# Each instance sits between (push) and (pop); its answer is known by construction:
#   pigeonhole PHP(n+1, n) is unsat; an integer system with a planted solution is sat.
Z3_PARAMS = {  # (pigeonhole instances, holes), planted integer instances
    "default": ((6, 8), 40),
    "quick": ((1, 8), 6),
    "tiny": ((1, 6), 2),
}


def write_z3(outdir, scale):
    (nphp, holes), nlin = Z3_PARAMS[scale]
    r = Lcg(13)
    out = ["(set-option :produce-models false)"]
    answers = []
    for k in range(max(nphp, nlin)):
        if k < nphp:
            n = holes
            out.append("(push 1)")
            pig = range(n + 1)
            for i in pig:
                for j in range(n):
                    out.append(f"(declare-const p{i}_{j} Bool)")
            for i in pig:
                out.append("(assert (or " + " ".join(f"p{i}_{j}" for j in range(n)) + "))")
            for j in range(n):
                for a in pig:
                    for b in range(a + 1, n + 1):
                        out.append(f"(assert (not (and p{a}_{j} p{b}_{j})))")
            out.append("(check-sat)\n(pop 1)")
            answers.append("unsat")
        if k < nlin:
            nv = 14
            sol = [r(41) - 20 for _ in range(nv)]
            out.append("(push 1)")
            for v in range(nv):
                out.append(f"(declare-const x{v} Int)\n(assert (<= -20 x{v} 20))")
            for _ in range(nv - 2):
                coef = [r(19) - 9 for _ in range(nv)]
                rhs = sum(c * s for c, s in zip(coef, sol))
                terms = " ".join(f"(* {c} x{v})" if c >= 0 else f"(* (- {-c}) x{v})" for v, c in enumerate(coef))
                out.append(f"(assert (= (+ {terms}) {rhs}))" if rhs >= 0 else
                           f"(assert (= (+ {terms}) (- {-rhs})))")
            # a few non-linear products keep it from being pure linear algebra
            for _ in range(3):
                a, b = r(nv), r(nv)
                prod = sol[a] * sol[b]
                out.append(f"(assert (= (* x{a} x{b}) {prod}))" if prod >= 0 else
                           f"(assert (= (* x{a} x{b}) (- {-prod})))")
            out.append("(check-sat)\n(pop 1)")
            answers.append("sat")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{scale}.smt2")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    with open(os.path.join(outdir, f"{scale}.expected"), "w") as fh:
        fh.write("\n".join(answers) + "\n")
    return path
