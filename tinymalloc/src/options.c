/* Options: TINYMALLOC_CONF=key:value,key:value read straight from environ at start-up (getenv
 * is not safe this early). A bad token gets one line on stderr naming it, and its default
 * stands; everything else in the string still applies. */
#include "tm_internal.h"

#include <string.h>

extern char **environ;

tm_options_t tm_opt;

/* What the user asked for, before classes are derived. */
static uint32_t conf_tiny_max = 128, conf_small_max = 8192;
static uint32_t conf_classes[TM_MAX_CLASSES], conf_nclasses;
static uint32_t conf_prealloc[TM_MAX_CLASSES], conf_nprealloc;

static void bad_token(const char *tok, size_t len, const char *why) {
    char buf[160];
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    memcpy(buf, tok, n);
    buf[n] = 0;
    tm_message("TINYMALLOC_CONF: ignoring '", buf, why);
}

/* Parses a decimal number with an optional k/m/g suffix (powers of 1024). */
static bool parse_size(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    if (len == 0) return false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0) return false;
    if (i < len) {
        unsigned shift;
        switch (s[i] | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return false;
        }
        if (i + 1 != len || v > (UINT64_MAX >> shift)) return false;
        v <<= shift;
    }
    *out = v;
    return true;
}

static bool parse_bool(const char *s, size_t len, bool *out) {
    if ((len == 1 && s[0] == '1') || (len == 4 && !memcmp(s, "true", 4)) ||
        (len == 3 && !memcmp(s, "yes", 3)) || (len == 2 && !memcmp(s, "on", 2))) {
        *out = true;
        return true;
    }
    if ((len == 1 && s[0] == '0') || (len == 5 && !memcmp(s, "false", 5)) ||
        (len == 2 && !memcmp(s, "no", 2)) || (len == 3 && !memcmp(s, "off", 3))) {
        *out = false;
        return true;
    }
    return false;
}

/* A '/'-separated list of sizes. */
static int parse_list(const char *s, size_t len, uint32_t *out, uint32_t max) {
    uint32_t n = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != '/') j++;
        uint64_t v;
        if (n == max || !parse_size(s + i, j - i, &v) || v > UINT32_MAX) return -1;
        out[n++] = (uint32_t)v;
        i = j + 1;
    }
    return (int)n;
}

static const char *check_classes(const uint32_t *c, uint32_t n) {
    if (n == 0) return "' (no classes)";
    for (uint32_t i = 0; i < n; i++) {
        if (c[i] == 0 || c[i] % TM_ALIGN) return "' (class sizes must be multiples of 16)";
        if (c[i] > TM_SMALL_MAX_LIMIT) return "' (class sizes must be at most 16384)";
        if (i && c[i] <= c[i - 1]) return "' (class sizes must increase)";
    }
    return NULL;
}

static void apply(const char *key, size_t klen, const char *val, size_t vlen, const char *tok,
                  size_t toklen) {
#define KEY(name) (klen == sizeof(name) - 1 && !memcmp(key, name, klen))
    uint64_t v;
    bool b;
    if (KEY("tiny_max") || KEY("small_max")) {
        if (!parse_size(val, vlen, &v) || v % TM_ALIGN || v < TM_ALIGN || v > TM_SMALL_MAX_LIMIT)
            return bad_token(tok, toklen, "' (a multiple of 16 from 16 to 16384)");
        *(KEY("tiny_max") ? &conf_tiny_max : &conf_small_max) = (uint32_t)v;
    } else if (KEY("classes")) {
        uint32_t tmp[TM_MAX_CLASSES];
        int n = parse_list(val, vlen, tmp, TM_MAX_CLASSES);
        if (n < 0) return bad_token(tok, toklen, "' (a list like 16/32/64, at most 64 sizes)");
        const char *why = check_classes(tmp, (uint32_t)n);
        if (why) return bad_token(tok, toklen, why);
        memcpy(conf_classes, tmp, sizeof tmp);
        conf_nclasses = (uint32_t)n;
    } else if (KEY("prealloc")) {
        uint32_t tmp[TM_MAX_CLASSES];
        int n = parse_list(val, vlen, tmp, TM_MAX_CLASSES);
        if (n < 0) return bad_token(tok, toklen, "' (a block count, or one per class: 64/32/8)");
        memcpy(conf_prealloc, tmp, sizeof tmp);
        conf_nprealloc = (uint32_t)n;
    } else if (KEY("prefault") || KEY("verbose")) {
        if (!parse_bool(val, vlen, &b)) return bad_token(tok, toklen, "' (expected 0 or 1)");
        *(KEY("prefault") ? &tm_opt.prefault : &tm_opt.verbose) = b;
    } else if (KEY("stats")) {
        if (vlen == 4 && !memcmp(val, "json", 4))
            tm_opt.stats = 2;
        else if (vlen == 5 && !memcmp(val, "table", 5))
            tm_opt.stats = 1;
        else if (parse_bool(val, vlen, &b))
            tm_opt.stats = b;
        else
            return bad_token(tok, toklen, "' (expected 0, 1, table or json)");
    } else if (KEY("stats_file")) {
        if (vlen == 0 || vlen >= sizeof tm_opt.stats_file)
            return bad_token(tok, toklen, "' (a path of 1 to 255 characters)");
        memcpy(tm_opt.stats_file, val, vlen);
        tm_opt.stats_file[vlen] = 0;
        if (tm_opt.stats == 0) tm_opt.stats = 2;
    } else if (KEY("profile")) {
        if (vlen == 0 || vlen >= sizeof tm_opt.profile_file)
            return bad_token(tok, toklen, "' (a path of 1 to 255 characters)");
        memcpy(tm_opt.profile_file, val, vlen);
        tm_opt.profile_file[vlen] = 0;
    } else if (KEY("slab_retain")) {
        if (!parse_size(val, vlen, &v) || v > 1u << 20)
            return bad_token(tok, toklen, "' (a page count up to 1048576)");
        tm_opt.slab_retain = (uint32_t)v;
    } else if (KEY("slab_purge_delay")) {
        if (!parse_size(val, vlen, &v) || v > 3600000)
            return bad_token(tok, toklen, "' (milliseconds, up to 3600000)");
        tm_opt.slab_purge_delay = (uint32_t)v;
    } else if (KEY("reserve")) {
        if (!parse_size(val, vlen, &v) || v < TM_CHUNK_SIZE || v > (1ULL << 40) || (v & (v - 1)))
            return bad_token(tok, toklen, "' (a power of two from 4m to 1024g)");
        tm_opt.reserve = v;
    } else if (!tm_tier_option(key, klen, val, vlen, tok, toklen)) {
        bad_token(tok, toklen, "' (unknown key)");
    }
#undef KEY
}

/* The medium_max token, kept to name it if the check of tm_options_init refuses it. */
static const char *medium_tok;
static size_t medium_toklen;

/* Appends the decimal digits of v to buf at *at (no printf before start-up is over). */
static void put_u64(char *buf, size_t *at, uint64_t v) {
    char d[20];
    int n = 0;
    do d[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 20);
    while (n) buf[(*at)++] = d[--n];
}

/* medium_max depends on arena_unit: an arena block never spans chunks, so it must fit what
 * one chunk holds past its metadata. Checked once every token is read, in whatever order. */
static void check_medium_max(void) {
    size_t cap = tm_arena_capacity(tm_topt.arena_unit);
    if (tm_topt.medium_max <= cap) return;
    char why[96];
    size_t at = 0;
    static const char a[] = "' (at most ", b[] = "k with arena_unit ", c[] = "k: one arena chunk)";
    memcpy(why, a, sizeof a - 1), at += sizeof a - 1;
    put_u64(why, &at, cap >> 10);
    memcpy(why + at, b, sizeof b - 1), at += sizeof b - 1;
    put_u64(why, &at, tm_topt.arena_unit >> 10);
    memcpy(why + at, c, sizeof c), at += sizeof c;
    bad_token(medium_tok, medium_toklen, why);
    tm_topt.medium_max = TM_MEDIUM_MAX_DEFAULT;
}

static void parse_conf(const char *s) {
    while (*s) {
        const char *tok = s;
        while (*s && *s != ',') s++;
        size_t toklen = (size_t)(s - tok);
        if (*s == ',') s++;
        if (toklen == 0) continue;
        const char *colon = memchr(tok, ':', toklen);
        if (colon == NULL) {
            bad_token(tok, toklen, "' (expected key:value)");
            continue;
        }
        apply(tok, (size_t)(colon - tok), colon + 1, toklen - (size_t)(colon - tok) - 1, tok,
              toklen);
    }
}

/* Default classes: 16-byte steps up to tiny_max, then four per doubling up to small_max. */
static void derive_classes(void) {
    uint32_t n = 0;
    if (conf_nclasses) {
        memcpy(tm_opt.class_size, conf_classes, sizeof conf_classes);
        n = conf_nclasses;
    } else {
        uint32_t tiny_max = conf_tiny_max < conf_small_max ? conf_tiny_max : conf_small_max;
        for (uint32_t s = TM_ALIGN; s <= tiny_max; s += TM_ALIGN) tm_opt.class_size[n++] = s;
        uint32_t s = tm_opt.class_size[n - 1];
        while (s < conf_small_max && n < TM_MAX_CLASSES) {
            uint32_t p2 = 1u << (31 - __builtin_clz(s));
            uint32_t step = p2 / 4 < TM_ALIGN ? TM_ALIGN : p2 / 4;
            s = s + step > conf_small_max ? conf_small_max : s + step;
            tm_opt.class_size[n++] = s;
        }
    }
    tm_opt.nclasses = n; /* slab_max and small_max: set by tm_slab_init after the class table */
    if (conf_nprealloc > 1 && conf_nprealloc != n) {
        tm_message("TINYMALLOC_CONF: ignoring prealloc", "",
                   " (its list must have one count per class)");
        conf_nprealloc = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t per_page = (uint32_t)(TM_PAGE_SIZE / tm_opt.class_size[i]);
        tm_opt.prealloc[i] = conf_nprealloc == 0   ? per_page /* one page per class */
                             : conf_nprealloc == 1 ? conf_prealloc[0]
                                                   : conf_prealloc[i];
    }
}

void tm_options_init(void) {
    tm_tier_options_defaults();
    tm_opt.slab_retain = 64;
    tm_opt.slab_purge_delay = 1000; /* as the arena and heap tiers */
    tm_opt.reserve = 1UL << 30;
    static const char name[] = "TINYMALLOC_CONF=";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, name, sizeof name - 1) == 0) {
            parse_conf(*e + sizeof name - 1);
            break;
        }
    }
    check_medium_max();
    derive_classes();
}

/* ---- the arena and heap tiers' knobs ------------------------------------------------------ */
tm_tier_options_t tm_topt;

/* Defaults, from measurements (see the tiers' README text and the commit messages):
 *   medium_max 256k  - the arena's unit runs beat the heap's block headers up to here;
 *   arena_unit 4k    - a page: purging needs no rounding, and a 4 MiB chunk has 1024 units
 *                      (16 bitmap words, so a first-fit scan is short);
 *   medium_cache 4m  - per thread, as tcmalloc's thread caches: most medium frees and
 *                      mallocs of a churning thread skip the arena lock;
 *   heap_*           - see the policy comment at the top of heap.c. */
void tm_tier_options_defaults(void) {
    tm_topt.medium_max = TM_MEDIUM_MAX_DEFAULT;
    tm_topt.arena_unit = 4096;
    tm_topt.arena_retain = 1;
    tm_topt.arena_purge_delay = 1000;
    tm_topt.arenas = 0;
    tm_topt.heap_growth = 200;
    tm_topt.heap_miss_threshold = 2;
    tm_topt.heap_decay = 10;
    tm_topt.heap_bound = 50;
    tm_topt.heap_purge_delay = 1000;
    tm_topt.heap_retain = 64UL << 20;
    tm_topt.heap_max = 0;
    tm_topt.huge_threshold = 32UL << 20;
    tm_topt.huge_threshold_max = 512UL << 20;
    tm_topt.huge_dynamic = true;
    tm_topt.medium_cache = 4UL << 20;
}

int tm_tier_option(const char *key, size_t klen, const char *val, size_t vlen, const char *tok,
                   size_t toklen) {
#define KEY(name) (klen == sizeof(name) - 1 && !memcmp(key, name, klen))
    uint64_t v;
    bool b;
    if (KEY("medium_max")) {
        if (!parse_size(val, vlen, &v) || v < 16384 || v > TM_CHUNK_SIZE) {
            bad_token(tok, toklen, "' (bytes from 16k to one arena chunk's capacity, under 4m)");
        } else {
            tm_topt.medium_max = v;
            medium_tok = tok, medium_toklen = toklen;
        }
    } else if (KEY("arena_unit")) {
        if (!parse_size(val, vlen, &v) || v < 1024 || v > 65536 || (v & (v - 1)))
            bad_token(tok, toklen, "' (a power of two from 1k to 64k)");
        else
            tm_topt.arena_unit = v;
    } else if (KEY("huge_dynamic")) {
        if (!parse_bool(val, vlen, &b))
            bad_token(tok, toklen, "' (expected 0 or 1)");
        else
            tm_topt.huge_dynamic = b;
    } else if (KEY("medium_cache")) {
        if (!parse_size(val, vlen, &v) || v > (1UL << 30))
            bad_token(tok, toklen, "' (bytes per thread, up to 1g; 0 turns it off)");
        else
            tm_topt.medium_cache = v;
    } else if (KEY("heap_retain") || KEY("heap_max") || KEY("huge_threshold") ||
               KEY("huge_threshold_max")) {
        if (!parse_size(val, vlen, &v) || v > (1ULL << 46))
            return bad_token(tok, toklen, "' (a size in bytes, k/m/g suffixes allowed)"), 1;
        size_t *dst = KEY("heap_retain")      ? &tm_topt.heap_retain
                      : KEY("heap_max")       ? &tm_topt.heap_max
                      : KEY("huge_threshold") ? &tm_topt.huge_threshold
                                              : &tm_topt.huge_threshold_max;
        if (dst == &tm_topt.huge_threshold && v < 16384)
            return bad_token(tok, toklen, "' (at least 16k)"), 1;
        *dst = v;
    } else if (KEY("arena_retain") || KEY("arena_purge_delay") || KEY("arenas") ||
               KEY("heap_growth") || KEY("heap_miss_threshold") || KEY("heap_decay") ||
               KEY("heap_bound") || KEY("heap_purge_delay")) {
        uint32_t *dst = KEY("arena_retain")          ? &tm_topt.arena_retain
                        : KEY("arena_purge_delay")   ? &tm_topt.arena_purge_delay
                        : KEY("arenas")              ? &tm_topt.arenas
                        : KEY("heap_growth")         ? &tm_topt.heap_growth
                        : KEY("heap_miss_threshold") ? &tm_topt.heap_miss_threshold
                        : KEY("heap_decay")          ? &tm_topt.heap_decay
                        : KEY("heap_bound")          ? &tm_topt.heap_bound
                                                     : &tm_topt.heap_purge_delay;
        uint64_t lo = 0, hi = 3600000;
        const char *why = "' (a number from 0 to 3600000)";
        if (dst == &tm_topt.arenas) hi = TM_MAX_ARENAS, why = "' (0 for one per CPU, up to 64)";
        if (dst == &tm_topt.heap_growth) lo = 100, hi = 1000, why = "' (percent, 100 to 1000)";
        if (dst == &tm_topt.heap_decay) hi = 100, why = "' (percent, 0 to 100)";
        if (dst == &tm_topt.heap_bound) hi = 1000, why = "' (percent, 0 to 1000)";
        if (dst == &tm_topt.heap_miss_threshold) lo = 1, hi = 1000, why = "' (1 to 1000)";
        if (!parse_size(val, vlen, &v) || v < lo || v > hi) return bad_token(tok, toklen, why), 1;
        *dst = (uint32_t)v;
    } else {
        return 0;
    }
    return 1;
#undef KEY
}
