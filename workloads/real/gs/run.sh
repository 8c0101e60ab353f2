#!/usr/bin/env bash
# Run step of "ghostscript": gs renders a generated PostScript document (curves, text in the
# URW base-35 fonts, recursive trees, clipping) to raw PPM on a pipe; the md5 of all pages must
# equal the reference rendered at prepare time without a preloaded allocator. ops = pages.
WL=ghostscript PREP=ghostscript
source "$(dirname "$0")/../lib.sh"
parse_scale "$@"
ps=$CACHE/ghostscript/$SCALE.ps exp=$CACHE/ghostscript/$SCALE.expected
need "$ps" "$exp"
t0=$EPOCHREALTIME
sum=$(gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=ppmraw -r110 -sOutputFile=- "$ps" | md5sum)
st=("${PIPESTATUS[@]}")
t1=$EPOCHREALTIME
[ "${st[0]}" = 0 ] || fail "gs exited with status ${st[0]}"
[ "${sum%% *}" = "$(cat "$exp")" ] || fail "rendering md5 ${sum%% *} != reference $(cat "$exp")"
tmbench "$(grep -c '^%%Page:' "$ps")" "$(elapsed "$t0" "$t1")"
echo "check: ok"
