#!/usr/bin/env bash
# Run step of "z3": z3 solves a generated SMT-LIB 2 script of independent instances
# (pigeonhole formulas, unsat by construction; integer systems with a planted solution, sat);
# its answers must equal the ones known by construction. ops = instances.
WL=z3 PREP=z3
source "$(dirname "$0")/../lib.sh"
parse_scale "$@"
smt=$CACHE/z3/$SCALE.smt2 exp=$CACHE/z3/$SCALE.expected
need "$smt" "$exp"
mktmp
t0=$EPOCHREALTIME
z3 -smt2 "$smt" > "$TMP/out" || fail "z3 exited with status $?"
t1=$EPOCHREALTIME
cmp -s "$TMP/out" "$exp" || fail "answers differ from $exp: $(diff "$exp" "$TMP/out" | head -5)"
tmbench "$(wc -l < "$exp")" "$(elapsed "$t0" "$t1")"
echo "check: ok"
