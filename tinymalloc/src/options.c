/* Options: TINYMALLOC_CONF=key:value,key:value read straight from environ at start-up (getenv
 * is not safe this early).
 *
 * One table (optdefs below) gives every key its type, default, range, the options its range
 * depends on, and a line of help. The parser, the range checks, TINYMALLOC_CONF=help and the
 * README's table (scripts/conf_table.py copies the help there, and a test holds the two equal)
 * all come from it, so a key cannot be documented with one range and checked against another.
 *
 * A bad token gets one line on stderr naming it, and its default stands; everything else in
 * the string still applies. Checks between options run once every token is read, so the
 * order of the tokens does not matter. */
#include "tm_internal.h"

#include <stddef.h>
#include <string.h>

extern char **environ;

tm_options_t tm_opt;

enum { OT_SIZE, OT_NUM, OT_BOOL, OT_STATS, OT_PATH, OT_LIST };
enum {
    OF_POW2 = 1,     /* a power of two */
    OF_MUL16 = 2,    /* a multiple of TM_ALIGN */
    OF_CHUNKCAP = 4, /* the maximum is what one arena chunk holds at the chosen arena_unit */
    OF_ABOVE = 8,    /* the minimum is the value of the option just before it in the table */
};

typedef struct {
    const char *name;
    uint8_t type, flags;
    uint16_t width, off; /* sizeof and offsetof the tm_options_t field */
    uint64_t def, min, max;
    const char *deftext; /* the default as help shows it, for lists and paths */
    const char *range;   /* the accepted values, for lists */
    const char *help;
} optdef_t;

#define FIELD(f) sizeof(((tm_options_t *)0)->f), offsetof(tm_options_t, f)
#define SIZE(f, fl, d, lo, hi, h)                                                                  \
    { #f, OT_SIZE, fl, FIELD(f), d, lo, hi, NULL, NULL, h }
#define NUM(f, d, lo, hi, h)                                                                       \
    { #f, OT_NUM, 0, FIELD(f), d, lo, hi, NULL, NULL, h }
#define BOOL(f, d, h)                                                                              \
    { #f, OT_BOOL, 0, FIELD(f), d, 0, 1, NULL, NULL, h }
#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define MS_MAX 3600000 /* an hour: longer delays are a typo, not a policy */

/* Defaults come from measurements: the commits that set them say which, and results/ holds the
 * runs. The order is the README's. */
static const optdef_t optdefs[] = {
    /* At most TM_MAX_CLASSES tiny classes: past 1k, 16-byte steps would overrun the table. */
    SIZE(tiny_max, OF_MUL16, 128, 16, TM_MAX_CLASSES *TM_ALIGN,
         "tiny classes are 16, 32, ... up to this size"),
    SIZE(small_max, OF_MUL16, 8192, 16, TM_SMALL_MAX_LIMIT,
         "largest slab size; above it, the arena tier"),
    {"classes", OT_LIST, 0, FIELD(classes), 0, 0, 0, "derived",
     "sizes like 16/32/64: increasing multiples of 16, at most 16k, at most 64 of them",
     "explicit class list; overrides tiny_max and small_max"},
    {"prealloc", OT_LIST, 0, FIELD(prealloc), 0, 0, 0, "one page per class",
     "one count for every class, or one per class like 64/64/32", "blocks preallocated per class"},
    BOOL(prefault, 0,
         "1: commit the preallocated clusters at start-up (lower first-touch latency)"),
    NUM(slab_retain, 64, 0, 1u << 20,
        "empty slab pages kept committed before their memory goes back to the OS"),
    NUM(slab_purge_delay, 1000, 0, MS_MAX,
        "ms an empty slab page past slab_retain stays unused before it is purged; 0: at once"),
    SIZE(slab_transfer, 0, 32 * MiB, 0, 64 * GiB,
         "bytes of freed blocks of other threads' slab pages that the transfer cache keeps for "
         "any thread's next malloc of their class; 0: they go back to their pages"),
    SIZE(reserve, OF_POW2, GiB, TM_CHUNK_SIZE, 1024 * GiB,
         "address space reserved at a time; halves on failure"),
    NUM(commit_chunks, 2, 0, 2,
        "1: reserve address space inaccessible and commit it a chunk at a time, so that "
        "vm.overcommit_memory=2 charges only chunks in use (and of the chunk map, its pages in "
        "use); 0: reserve it read-write; 2: 1 when vm.overcommit_memory is 2"),
    BOOL(purge_thread, 1,
         "1: a background thread, started once the process has two threads, runs the purges "
         "and the medium cache's decay that fall due while no thread calls the allocator"),
    BOOL(purge_lazy, 0,
         "1: purge with MADV_FREE: the kernel takes the pages only when it needs memory, a page "
         "written before that costs no fault, and RSS falls only then"),
    {"stats", OT_STATS, 0, FIELD(stats), 0, 0, 2, NULL, NULL,
     "1 or table: a table on stderr at exit; json: JSON to stats_file"},
    {"stats_file", OT_PATH, 0, FIELD(stats_file), 0, 0, 0, "none", NULL,
     "where statistics go (stats becomes json unless given); %p becomes the pid"},
    {"profile", OT_PATH, 0, FIELD(profile), 0, 0, 0, "none", NULL,
     "write an allocation profile to this path at exit (%p becomes the pid)"},
    SIZE(medium_max, OF_CHUNKCAP, 256 * KiB, 16 * KiB, TM_CHUNK_SIZE,
         "largest arena (medium) request; above it, the heap"),
    SIZE(arena_unit, OF_POW2, 4 * KiB, KiB, 64 * KiB, "bytes per bitmap bit of an arena chunk"),
    NUM(arena_retain, 1, 0, 1024,
        "wholly free arena chunks an arena keeps (purged) before returning the rest"),
    NUM(arena_purge_delay, 1000, 0, MS_MAX,
        "ms before a wholly free arena chunk's pages go back to the OS"),
    NUM(arena_dirty, 25, 0, 1000,
        "percent of its chunks in use that an arena may keep wholly free and committed, plus "
        "one, plus one for each chunk it purged at once and took again within "
        "arena_purge_delay (less one for each the delay purges); a chunk emptied past that is "
        "purged at once, or once the purger runs, kept a heap_purge_delay as a dirty chunk that "
        "any tier takes first"),
    NUM(arenas, 0, 0, TM_MAX_ARENAS, "number of arenas; 0: one per CPU"),
    NUM(heaps, 0, 0, TM_MAX_ARENAS,
        "number of heaps (threads share the first until they contend); 0: one per CPU"),
    SIZE(medium_cache, 0, 256 * KiB, 0, GiB,
         "bytes of freed medium blocks each thread keeps; 0 turns the cache off"),
    SIZE(medium_cache_max, 0, 32 * KiB, 0, TM_CHUNK_SIZE,
         "largest class requests are rounded up to, and the largest block the medium cache "
         "keeps but for those of medium_cache_exact; larger ones go back to their arena at once"),
    SIZE(medium_cache_exact, 0, 256 * KiB, 0, TM_CHUNK_SIZE,
         "largest block above medium_cache_max the medium cache keeps when its size is exactly a "
         "class (64k, 80k, 96k, 112k, 128k, 160k ...), beside medium_cache (up to "
         "medium_cache_exact_bytes); requests there are not rounded up; 0: none"),
    SIZE(medium_cache_exact_bytes, 0, MiB, 0, GiB,
         "bytes of blocks above medium_cache_max (those of medium_cache_exact) each thread "
         "keeps beside medium_cache; 0: none"),
    SIZE(medium_cache_total, 0, 16 * MiB, 0, 1ULL << 46,
         "bytes of freed medium blocks all threads together keep"),
    NUM(medium_cache_decay, 1000, 0, MS_MAX,
        "ms a freed medium block stays cached before it goes back to its arena"),
    NUM(heap_growth, 200, 100, 1000,
        "percent: the heap's anticipation multiplies by this at each further miss"),
    NUM(heap_miss_threshold, 2, 1, 1000,
        "consecutive misses before the heap grows by more than asked (hits in the room a "
        "growth added do not break the streak)"),
    NUM(heap_decay, 10, 0, 100, "percent of the anticipation dropped at each hit"),
    NUM(heap_bound, 50, 0, 1000, "percent above the peak in use that the heap may ever grow to"),
    NUM(heap_purge_delay, 1000, 0, MS_MAX,
        "ms a free heap block stays committed before madvise (and a dirty chunk; 0: none is kept)"),
    NUM(heap_recent, 0, 0, TM_HEAP_RECENT_MAX,
        "freed heap blocks each heap keeps whole, unmerged, for the next request of their size "
        "(the oldest merges when one more comes, all of them before the heap grows); fewer heap "
        "instructions, peak RSS moved either way; 0: none"),
    SIZE(heap_retain, 0, 64 * MiB, 0, 1ULL << 46,
         "free heap bytes kept mapped; wholly free spans past it are returned; also the most "
         "dirty chunks kept"),
    SIZE(heap_max, 0, 0, 0, 1ULL << 46,
         "heap size limit (0: none); past it, blocks get their own mappings"),
    SIZE(huge_threshold, 0, 32 * MiB, 16 * KiB, 1ULL << 46,
         "a freed heap block this large leaves the heap at once (initial value)"),
    SIZE(huge_threshold_max, OF_ABOVE, 512 * MiB, 16 * KiB, 1ULL << 46,
         "the adaptive huge threshold never rises past this"),
    BOOL(huge_dynamic, 1, "raise the threshold as huge blocks are freed and asked for again"),
};
#define NOPTS (sizeof optdefs / sizeof optdefs[0])

/* The token that set each option, to name it when a check between options refuses it. */
static struct {
    const char *tok;
    size_t len;
} given[NOPTS];

/* ---- text without printf ------------------------------------------------------------------ */
typedef struct {
    char s[160];
    size_t n;
} text_t;

static void put_str(text_t *t, const char *s) {
    for (; *s && t->n < sizeof t->s - 1; s++) t->s[t->n++] = *s;
    t->s[t->n] = 0;
}

static void put_u64(text_t *t, uint64_t v) {
    char d[20];
    int n = 0;
    do d[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 20);
    while (n && t->n < sizeof t->s - 1) t->s[t->n++] = d[--n];
    t->s[t->n] = 0;
}

/* A size with the largest suffix that divides it: 4096 -> 4k, 2^30 -> 1g. */
static void put_size(text_t *t, uint64_t v) {
    static const char suffix[] = "gmk";
    for (int shift = 30, i = 0; shift >= 10; shift -= 10, i++) {
        if (v && v % (1ULL << shift) == 0) {
            put_u64(t, v >> shift);
            char s[2] = {suffix[i], 0};
            return put_str(t, s);
        }
    }
    put_u64(t, v);
}

static void put_value(text_t *t, const optdef_t *d, uint64_t v) {
    d->type == OT_SIZE ? put_size(t, v) : put_u64(t, v);
}

static uint64_t max_of(const optdef_t *d) {
    return d->flags & OF_CHUNKCAP ? tm_arena_capacity(tm_opt.arena_unit) : d->max;
}

static uint64_t load(const optdef_t *d) {
    uint64_t v = 0;
    memcpy(&v, (const char *)&tm_opt + d->off, d->width); /* little-endian, as checked below */
    return v;
}
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "load() reads a field's low bytes");

static uint64_t min_of(const optdef_t *d) { return d->flags & OF_ABOVE ? load(d - 1) : d->min; }

/* The values a key accepts, as both its error message and its help show them. */
static void put_range(text_t *t, const optdef_t *d) {
    switch (d->type) {
    case OT_BOOL: return put_str(t, "0 or 1");
    case OT_STATS: return put_str(t, "0, 1, table or json");
    case OT_PATH: return put_str(t, "a path of 1 to 255 characters");
    case OT_LIST: return put_str(t, d->range);
    }
    if (d->flags & OF_POW2) put_str(t, "a power of two, ");
    if (d->flags & OF_MUL16) put_str(t, "a multiple of 16, ");
    if (d->flags & OF_ABOVE) {
        put_str(t, (d - 1)->name);
        put_str(t, " (");
        put_value(t, d, min_of(d));
        put_str(t, ")");
    } else {
        put_value(t, d, d->min);
    }
    put_str(t, " to ");
    put_value(t, d, max_of(d));
    if (d->flags & OF_CHUNKCAP) {
        put_str(t, ": one arena chunk at arena_unit ");
        put_size(t, tm_opt.arena_unit);
    }
}

static void bad_token(const char *tok, size_t len, const char *why) {
    char buf[160];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, tok, n);
    buf[n] = 0;
    tm_message("TINYMALLOC_CONF: ignoring '", buf, why);
}

static void bad_value(const char *tok, size_t len, const optdef_t *d) {
    text_t why = {.n = 0};
    put_str(&why, "' (");
    put_range(&why, d);
    put_str(&why, ")");
    bad_token(tok, len, why.s);
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* A decimal number with an optional k/m/g suffix (powers of 1024). */
static bool parse_size(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0) return false;
    if (i < len) {
        static const char suffix[] = "kmg";
        const char *p = memchr(suffix, s[i] | 0x20, 3);
        unsigned shift = p ? 10 * (unsigned)(p - suffix + 1) : 0;
        if (!p || i + 1 != len || v > (UINT64_MAX >> shift)) return false;
        v <<= shift;
    }
    *out = v;
    return true;
}

static bool is_word(const char *s, size_t len, const char *w) {
    return strlen(w) == len && memcmp(s, w, len) == 0;
}

static bool parse_bool(const char *s, size_t len, uint64_t *out) {
    if (is_word(s, len, "1") || is_word(s, len, "true") || is_word(s, len, "yes") ||
        is_word(s, len, "on"))
        return *out = 1, true;
    if (is_word(s, len, "0") || is_word(s, len, "false") || is_word(s, len, "no") ||
        is_word(s, len, "off"))
        return *out = 0, true;
    return false;
}

/* A '/'-separated list of sizes. */
static bool parse_list(const char *s, size_t len, tm_sizelist_t *out) {
    uint32_t n = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && s[j] != '/') j++;
        uint64_t v;
        if (n == TM_MAX_CLASSES || !parse_size(s + i, j - i, &v) || v > UINT32_MAX) return false;
        out->v[n++] = (uint32_t)v;
        i = j + 1;
    }
    out->n = n;
    return true;
}

static bool classes_ok(const tm_sizelist_t *c) {
    for (uint32_t i = 0; i < c->n; i++)
        if (c->v[i] == 0 || c->v[i] % TM_ALIGN || c->v[i] > TM_SMALL_MAX_LIMIT ||
            (i && c->v[i] <= c->v[i - 1]))
            return false;
    return c->n > 0;
}

static void store(const optdef_t *d, uint64_t v) {
    char *p = (char *)&tm_opt + d->off;
    uint32_t v32 = (uint32_t)v;
    uint8_t v8 = (uint8_t)v;
    memcpy(p, d->width == 8 ? (void *)&v : d->width == 4 ? (void *)&v32 : (void *)&v8, d->width);
}

/* Parses and stores one value; false leaves the option as it was. */
static bool apply(const optdef_t *d, const char *val, size_t vlen) {
    char *p = (char *)&tm_opt + d->off;
    uint64_t v;
    switch (d->type) {
    case OT_BOOL:
        if (!parse_bool(val, vlen, &v)) return false;
        break;
    case OT_STATS:
        if (is_word(val, vlen, "table"))
            v = 1;
        else if (is_word(val, vlen, "json"))
            v = 2;
        else if (!parse_bool(val, vlen, &v))
            return false;
        break;
    case OT_PATH:
        if (vlen == 0 || vlen >= sizeof tm_opt.stats_file) return false;
        memcpy(p, val, vlen);
        p[vlen] = 0;
        return true;
    case OT_LIST: {
        tm_sizelist_t l;
        if (!parse_list(val, vlen, &l)) return false;
        if (p == (char *)&tm_opt.classes && !classes_ok(&l)) return false;
        memcpy(p, &l, sizeof l);
        return true;
    }
    default:
        /* OF_CHUNKCAP's maximum and OF_ABOVE's minimum wait for the options they depend on:
         * check_dependent tests them. */
        if (!parse_size(val, vlen, &v) || v < d->min) return false;
        if (v > d->max && !(d->flags & OF_CHUNKCAP)) return false;
        if ((d->flags & OF_POW2) && (v & (v - 1))) return false;
        if ((d->flags & OF_MUL16) && v % TM_ALIGN) return false;
    }
    store(d, v);
    return true;
}

static const optdef_t *find(const char *key, size_t klen) {
    for (size_t i = 0; i < NOPTS; i++)
        if (is_word(key, klen, optdefs[i].name)) return &optdefs[i];
    return NULL;
}

/* Returns true when the string asks for help. */
static bool parse_conf(const char *s) {
    bool help = false;
    while (*s) {
        const char *tok = s;
        while (*s && *s != ',') s++;
        size_t toklen = (size_t)(s - tok);
        if (*s == ',') s++;
        if (toklen == 0) continue;
        if (is_word(tok, toklen, "help")) {
            help = true;
            continue;
        }
        const char *colon = memchr(tok, ':', toklen);
        if (colon == NULL) {
            bad_token(tok, toklen, "' (expected key:value; help lists the keys)");
            continue;
        }
        const optdef_t *d = find(tok, (size_t)(colon - tok));
        if (d == NULL) {
            bad_token(tok, toklen, "' (unknown key; TINYMALLOC_CONF=help lists them)");
            continue;
        }
        size_t vlen = toklen - (size_t)(colon - tok) - 1;
        if (!apply(d, colon + 1, vlen)) {
            bad_value(tok, toklen, d);
            continue;
        }
        given[d - optdefs].tok = tok;
        given[d - optdefs].len = toklen;
    }
    return help;
}

#define OPT_INDEX(name) (find(name, sizeof(name) - 1) - optdefs)

/* Ranges that depend on other options, checked once every token is read. */
static void check_dependent(void) {
    /* An arena block never spans chunks: medium_max must fit what one chunk holds. */
    const optdef_t *mm = &optdefs[OPT_INDEX("medium_max")];
    if (tm_opt.medium_max > max_of(mm)) {
        if (given[mm - optdefs].tok)
            bad_value(given[mm - optdefs].tok, given[mm - optdefs].len, mm);
        store(mm, mm->def);
    }
    /* The adaptive threshold starts at huge_threshold and only rises. */
    const optdef_t *hm = &optdefs[OPT_INDEX("huge_threshold_max")];
    if (tm_opt.huge_threshold_max < min_of(hm)) {
        if (given[hm - optdefs].tok)
            bad_value(given[hm - optdefs].tok, given[hm - optdefs].len, hm);
        tm_opt.huge_threshold_max = tm_opt.huge_threshold;
    }
    /* stats_file alone asks for JSON statistics. */
    if (tm_opt.stats_file[0] && !given[OPT_INDEX("stats")].tok) tm_opt.stats = 2;
}

/* Default classes: 16-byte steps up to tiny_max, then four per doubling up to small_max, and
 * from 256 B one more at an eighth past each power of two. A power of two plus a header is a
 * common request (sqlite's 4096-byte pages take 4368, its 1 KiB buffers 1032); four classes per
 * doubling round it up by a fifth of its size, which at sqlite's 3,000 pages and 12,000 buffers
 * was 5.4 MB, nearly all of its peak RSS above glibc's (36.2 MB against 30.5). */
#define TM_EIGHTH_MIN 256
static void derive_classes(void) {
    uint32_t n = 0;
    if (tm_opt.classes.n) {
        memcpy(tm_opt.class_size, tm_opt.classes.v, sizeof tm_opt.classes.v);
        n = tm_opt.classes.n;
    } else {
        uint32_t tiny_max = tm_opt.tiny_max < tm_opt.small_max ? tm_opt.tiny_max : tm_opt.small_max;
        for (uint32_t s = TM_ALIGN; s <= tiny_max && n < TM_MAX_CLASSES; s += TM_ALIGN)
            tm_opt.class_size[n++] = s;
        uint32_t s = tm_opt.class_size[n - 1];
        while (s < tm_opt.small_max && n < TM_MAX_CLASSES) {
            uint32_t p2 = 1u << (31 - __builtin_clz(s));
            uint32_t step = p2 / 4 < TM_ALIGN ? TM_ALIGN : p2 / 4;
            uint32_t next = s == p2 && p2 >= TM_EIGHTH_MIN ? s + p2 / 8 : (s / step + 1) * step;
            s = next > tm_opt.small_max ? tm_opt.small_max : next;
            tm_opt.class_size[n++] = s;
        }
    }
    tm_opt.nclasses = n; /* slab_max and fast_max: set by tm_slab_init after the class table */
    tm_sizelist_t *pre = &tm_opt.prealloc;
    if (pre->n > 1 && pre->n != n) {
        size_t i = (size_t)OPT_INDEX("prealloc");
        text_t why = {.n = 0};
        put_str(&why, "' (one count, or one per class: there are ");
        put_u64(&why, n);
        put_str(&why, ")");
        bad_token(given[i].tok, given[i].len, why.s);
        pre->n = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t per_page = (uint32_t)(TM_PAGE_SIZE / tm_opt.class_size[i]);
        tm_opt.class_prealloc[i] = pre->n == 0 ? per_page : pre->v[pre->n == 1 ? 0 : i];
    }
}

/* ---- help: a Markdown table, the same as the README's ------------------------------------- */
static void cell(tm_out_t *o, const char *s, bool code) {
    tm_out_str(o, code ? " `" : " ");
    tm_out_str(o, s);
    tm_out_str(o, code ? "` |" : " |");
}

static void print_help(void) {
    char buf[1024];
    tm_out_t o = {buf, 0, sizeof buf, 2};
    tm_out_str(&o, "tinymalloc: TINYMALLOC_CONF=key:value,key:value takes these keys "
                   "(sizes take k, m and g suffixes):\n");
    tm_out_str(&o, "| key | default | accepted values | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const optdef_t *d = &optdefs[i];
        text_t def = {.n = 0}, range = {.n = 0};
        if (d->deftext)
            put_str(&def, d->deftext);
        else
            put_value(&def, d, d->def);
        put_range(&range, d);
        tm_out_str(&o, "|");
        cell(&o, d->name, true);
        cell(&o, def.s, d->deftext == NULL);
        cell(&o, range.s, false);
        cell(&o, d->help, false);
        tm_out_str(&o, "\n");
    }
    tm_out_flush(&o);
}

void tm_options_init(void) {
    memset(&tm_opt, 0, sizeof tm_opt);
    for (size_t i = 0; i < NOPTS; i++)
        if (optdefs[i].type != OT_PATH && optdefs[i].type != OT_LIST)
            store(&optdefs[i], optdefs[i].def);
    bool help = false;
    static const char name[] = "TINYMALLOC_CONF=";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, name, sizeof name - 1) == 0) {
            help = parse_conf(*e + sizeof name - 1);
            break;
        }
    }
    check_dependent();
    derive_classes();
    if (help) print_help();
    if (tm_opt.commit_chunks == 2) tm_opt.commit_chunks = tm_os_overcommit_strict();
}
