#!/usr/bin/env bash
# Run step of "rocksdb": Debian's db_bench (rocksdb-tools) filling a fresh database with random
# keys, then reading random keys back (fillrandom,readrandom: mimalloc-bench's rocksdb case),
# 100-byte values, no compression, one client thread, a fixed seed, in a scratch directory.
# RocksDB's own flush and compaction threads run beside it.
# Check: both benchmarks report every operation, and readrandom finds exactly the number of keys
# the fixed seed puts in the database (the table below; --expect-found N replaces it, for the
# tests). ops = operations of both benchmarks.
WL=rocksdb PREP=rocksdb
source "$(dirname "$0")/../lib.sh"
expect=
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --expect-found) expect=${2:-}; shift 2 || shift ;;
        *) args+=("$1"); shift ;;
    esac
done
parse_scale "${args[@]}"
case $SCALE in
    default) num=1000000 found=632324 ;;
    quick) num=200000 found=126311 ;;
    tiny) num=20000 found=12616 ;;
esac
found=${expect:-$found}
need /usr/bin/db_bench "$CACHE/rocksdb/.prepared"
mktmp
t0=$EPOCHREALTIME
/usr/bin/db_bench --benchmarks=fillrandom,readrandom --db="$TMP/db" --num="$num" --value_size=100 \
    --threads=1 --seed=42 --compression_type=none > "$TMP/out" 2> "$TMP/err" \
    || { tail -5 "$TMP/err" >&2; fail "db_bench failed"; }
t1=$EPOCHREALTIME
grep -Eq "^fillrandom +:.* $num operations;" "$TMP/out" || fail "fillrandom did not report $num operations"
got=$(grep -E "^readrandom +:" "$TMP/out" | grep -oE "\([0-9]+ of $num found\)" | grep -oE "^\([0-9]+" | tr -d '(')
[ "$got" = "$found" ] || fail "readrandom found ${got:-nothing} of $num keys, expected $found"
tmbench $((2 * num)) "$(elapsed "$t0" "$t1")"
echo "check: ok"
