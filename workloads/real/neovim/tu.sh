#!/usr/bin/env bash
# Run step of "neovim-tu": a fixed list of neovim's largest translation units (by source
# size; default the 10 largest, quick the largest, tiny the median one), compiled one after another with the exact
# commands of compile_commands.json from the prepared build-tu tree (objects go to a scratch
# directory). The environment is kept: the harness's LD_PRELOAD reaches cc, cc1 and as.
# With --clang first ("clang-tu"): the same units and commands, compiled by Debian's clang
# (prepared into cache/real/clang/ by `prepare.py clang-tu`).
# Check: every compiler run exits 0 and leaves an ELF object. ops = translation units.
WL=neovim-tu PREP=neovim-tu STEP=neovim
if [ "${1:-}" = --clang ]; then
    WL=clang-tu PREP=clang-tu STEP=clang
    shift
fi
source "$(dirname "$0")/../lib.sh"
parse_scale "$@"
script=$CACHE/$STEP/tu-$SCALE.sh
need "$script" "$CACHE/$STEP/.prepared"
mktmp
t0=$EPOCHREALTIME
OUT=$TMP bash -e "$script" > "$TMP/log" 2>&1 || { tail -30 "$TMP/log" >&2; fail "a compiler run failed"; }
t1=$EPOCHREALTIME
n=0
for o in "$TMP"/*.o; do
    [ "$(head -c4 "$o" | od -An -c | tr -d ' ')" = '177ELF' ] || fail "$o is not an ELF object"
    n=$((n + 1))
done
want=$(grep -c '^cd ' "$script")
[ "$n" = "$want" ] || fail "$n objects, expected $want"
tmbench "$n" "$(elapsed "$t0" "$t1")"
echo "check: ok"
