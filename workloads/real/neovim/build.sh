#!/usr/bin/env bash
# Run step of "neovim-build": Debian's neovim 0.7.2, configured at prepare time like
# debian/rules (Release, system libraries, ENABLE_LTO=OFF), built with ninja -j$(nproc).
# The environment is kept, so the harness's LD_PRELOAD reaches ninja and every compiler,
# assembler, linker and generator it starts.
#   default: clean full build (ninja -t clean, then ninja)
#   quick:   incremental: two objects and bin/nvim removed, rebuilt and relinked
#   tiny:    one small object and bin/nvim removed, rebuilt and relinked
# Check (here and in check.sh): ninja exits 0 and the new bin/nvim runs headless under the same
# environment and prints 2. ops = build edges ninja ran.
WL=neovim-build PREP=neovim-build
source "$(dirname "$0")/../lib.sh"
parse_scale "$@"
B=$CACHE/neovim/build
need "$B/build.ninja" "$CACHE/neovim/.prepared"
mktmp
# One run at a time owns the build tree: a second, concurrent run fails instead of cleaning
# the tree under the first one's feet.
exec 9> "$CACHE/neovim/build.lock"
flock -n 9 || fail "another neovim-build run is using $B (lock $CACHE/neovim/build.lock)"
case $SCALE in
    default) ninja -C "$B" -t clean > /dev/null || fail "ninja -t clean failed" ;;
    quick) rm -f "$B"/src/nvim/CMakeFiles/nvim.dir/{undo,memline}.c.o "$B/bin/nvim" ;;
    tiny) rm -f "$B"/src/nvim/CMakeFiles/nvim.dir/arabic.c.o "$B/bin/nvim" ;;
esac
t0=$EPOCHREALTIME
ninja -C "$B" -j"$(nproc)" > "$TMP/log" 2>&1 || { tail -30 "$TMP/log" >&2; fail "ninja failed"; }
t1=$EPOCHREALTIME
edges=$(grep -o '^\[[0-9]*/' "$TMP/log" | tail -1 | tr -d '[/')
bash "$(dirname "$0")/check.sh" || exit 1
tmbench "${edges:-0}" "$(elapsed "$t0" "$t1")"
echo "check: ok"
