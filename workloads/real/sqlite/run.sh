#!/usr/bin/env bash
# Run step of "sqlite": sqlite3 (Debian's, libsqlite3 calls malloc) executes a generated SQL
# script on an in-memory database; its whole stdout must equal the expected output computed
# by the generator (workloads/real/gen_inputs.py). ops = SQL statements.
WL=sqlite PREP=sqlite
source "$(dirname "$0")/../lib.sh"
parse_scale "$@"
sql=$CACHE/sqlite/$SCALE.sql exp=$CACHE/sqlite/$SCALE.expected
need "$sql" "$exp"
mktmp
t0=$EPOCHREALTIME
sqlite3 -batch -bail :memory: < "$sql" > "$TMP/out" || fail "sqlite3 exited with status $?"
t1=$EPOCHREALTIME
cmp -s "$TMP/out" "$exp" || fail "output differs from $exp: $(diff "$exp" "$TMP/out" | head -5)"
tmbench "$(wc -l < "$sql")" "$(elapsed "$t0" "$t1")"
echo "check: ok"
