#!/usr/bin/env bash
# Check of "neovim-build": the built nvim runs headless under the caller's environment (the
# harness's LD_PRELOAD included) and evaluates Lua: it must print 2 and exit 0.
WL=neovim-check PREP=neovim-build
source "$(dirname "$0")/../lib.sh"
nvim=$CACHE/neovim/build/bin/nvim
need "$nvim"
out=$(cd "$CACHE/neovim" && timeout 60 "$nvim" --headless -u NONE -i NONE \
      -c 'lua io.stdout:write(#vim.split(string.rep("ab,", 1000), ",") + 1 - 1000)' -c 'qa!' </dev/null)
st=$?
[ $st = 0 ] || fail "nvim --headless exited with status $st"
[ "$out" = 2 ] || fail "nvim --headless printed '$out', expected 2"
