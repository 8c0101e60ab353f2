#!/usr/bin/env bash
# Tests of the real workloads at tiny scale: for lua, python, sqlite, ruby, perl and rocksdb, the prepare step
# (workloads/real/prepare.py, idempotent), the run step and the check exactly as the manifest
# (bench/manifest/real.json) states them, under glibc and under build/libtinymalloc.so when it
# is built; plus the prepare entry point's usage errors.
# Prints PASS:/FAIL:/SKIP: lines. Needs the Debian packages lua5.4, sqlite3, ruby3.1, perl and rocksdb-tools
# (scripts/packages-test.txt); without them and without root to install them: SKIP.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=/usr/bin/python3
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1"; shift; [ $# -gt 0 ] && printf '    %s\n' "$@"; fails=$((fails + 1)); }
skip() { echo "SKIP: $1 ($2)"; }

# ---- the entry point ----------------------------------------------------------------------
$PY workloads/real/prepare.py --help > /tmp/tm-real-help.$$ 2>&1 && grep -q "Exit status" /tmp/tm-real-help.$$ \
    && pass "prepare --help" || fail "prepare --help"
rm -f /tmp/tm-real-help.$$
$PY workloads/real/prepare.py no-such-workload > /dev/null 2>&1
[ $? = 2 ] && pass "prepare unknown name exits 2" || fail "prepare unknown name exits 2"
$PY workloads/real/prepare.py --list > /dev/null 2>&1 && pass "prepare --list" || fail "prepare --list"

# ---- manifest-driven prepare / run / check --------------------------------------------------
# helper: print the manifest fields of one workload as shell-quoted words
field() {
    $PY - "$1" "$2" <<'PYEOF'
import json, shlex, sys
w = {x["name"]: x for x in json.load(open("bench/manifest/real.json"))["workloads"]}[sys.argv[1]]
f = sys.argv[2]
if f == "argv":
    print(shlex.join(w["cmd"] + w["scales"]["tiny"]))
elif f == "prepare":
    print(shlex.join(w["prepare"]))
elif f == "env":
    print(" ".join(shlex.quote(f"{k}={v}") for k, v in (w.get("env") or {}).items()))
elif f == "regex":
    print(w["check"].get("stdout_regex") or "")
elif f == "exit":
    print(w["check"].get("exit", 0))
PYEOF
}
matches() {  # matches REGEX FILE: the harness's test (re.search with re.M)
    $PY -c 'import re,sys; sys.exit(0 if re.search(sys.argv[1], open(sys.argv[2]).read(), re.M) else 1)' "$1" "$2"
}

TM=$ROOT/build/libtinymalloc.so
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for w in lua python sqlite ruby perl rocksdb; do
    eval "prep=($(field $w prepare))"
    no_install=()
    [ "$(id -u)" = 0 ] || no_install=(--no-install)
    "${prep[@]}" "${no_install[@]}" > "$out/$w.prep" 2>&1
    st=$?
    if [ $st = 3 ]; then
        skip "$w" "prepare: prerequisites unavailable: $(tail -1 "$out/$w.prep")"
        continue
    elif [ $st != 0 ]; then
        fail "$w prepare" "exit $st" "$(tail -5 "$out/$w.prep")"
        continue
    fi
    pass "$w prepare"
    "${prep[@]}" --no-install > "$out/$w.prep2" 2>&1 && grep -q "already prepared" "$out/$w.prep2" \
        && pass "$w prepare is idempotent" || fail "$w prepare is idempotent" "$(tail -3 "$out/$w.prep2")"
    eval "argv=($(field $w argv))"
    eval "envs=($(field $w env))"
    rx=$(field $w regex)
    want=$(field $w exit)
    for alloc in glibc tinymalloc; do
        pre=()
        if [ $alloc = tinymalloc ]; then
            [ -e "$TM" ] || { skip "$w run under tinymalloc" "$TM not built"; continue; }
            pre=("LD_PRELOAD=$TM")
        fi
        env "${envs[@]}" "${pre[@]}" timeout 60 "${argv[@]}" > "$out/$w.$alloc.out" 2> "$out/$w.$alloc.err"
        st=$?
        if [ "$st" != "$want" ]; then
            fail "$w run+check under $alloc" "exit $st (want $want)" "$(tail -3 "$out/$w.$alloc.err")"
        elif ! matches "$rx" "$out/$w.$alloc.out"; then
            fail "$w run+check under $alloc" "stdout does not match /$rx/" "$(tail -3 "$out/$w.$alloc.out")"
        elif ! grep -q '^TMBENCH {.*"ops_per_sec"' "$out/$w.$alloc.out"; then
            fail "$w run+check under $alloc" "no TMBENCH line"
        else
            pass "$w run+check under $alloc"
        fi
    done
done

# ---- a wrong answer is caught -----------------------------------------------------------
/usr/bin/lua5.4 workloads/real/lua/churn.lua --scale huge > /dev/null 2>&1
[ $? = 2 ] && pass "lua rejects an unknown scale" || fail "lua rejects an unknown scale"
# the interpreter scripts compare their checksum with the scale's expected one: a wrong one fails
for w in ruby perl; do
    eval "argv=($(field $w argv))"
    [ -x "${argv[0]}" ] || { skip "$w check catches a wrong result" "${argv[0]} not installed"; continue; }
    "${argv[@]}" --expect 000000000000 > "$out/$w.bad.out" 2> "$out/$w.bad.err"
    st=$?
    [ $st = 1 ] && grep -q "!= expected 000000000000" "$out/$w.bad.err" && ! grep -q "check: ok" "$out/$w.bad.out" \
        && pass "$w check catches a wrong result" || fail "$w check catches a wrong result" "exit $st"
    "${argv[0]}" "${argv[1]}" --scale huge > /dev/null 2>&1
    [ $? = 2 ] && pass "$w rejects an unknown scale" || fail "$w rejects an unknown scale"
done
# rocksdb: readrandom must find the keys the fixed seed wrote
if [ -x /usr/bin/db_bench ] && [ -e cache/real/rocksdb/.prepared ]; then
    bash workloads/real/rocksdb/run.sh --scale tiny --expect-found 1 > "$out/rdb.out" 2> "$out/rdb.err"
    st=$?
    [ $st = 1 ] && grep -q "expected 1" "$out/rdb.err" && ! grep -q "check: ok" "$out/rdb.out" \
        && pass "rocksdb check catches a wrong result" || fail "rocksdb check catches a wrong result" "exit $st"
else
    skip "rocksdb check catches a wrong result" "rocksdb not prepared"
fi
# clang-tu (and neovim-tu): an object that is not ELF, or a missing one, fails the check
mkdir -p "$out/tucache/clang"
touch "$out/tucache/clang/.prepared"
printf 'cd /\nprintf x > "$OUT"/a.o\n' > "$out/tucache/clang/tu-tiny.sh"
TM_REAL_CACHE=$out/tucache bash workloads/real/neovim/tu.sh --clang --scale tiny > "$out/tu.out" 2> "$out/tu.err"
st=$?
[ $st = 1 ] && grep -q "is not an ELF object" "$out/tu.err" && ! grep -q "check: ok" "$out/tu.out" \
    && pass "clang-tu check catches a bad object" || fail "clang-tu check catches a bad object" "exit $st"
printf 'cd /\nprintf "\\177ELF" > "$OUT"/a.o\ncd /\ntrue\n' > "$out/tucache/clang/tu-tiny.sh"
TM_REAL_CACHE=$out/tucache bash workloads/real/neovim/tu.sh --clang --scale tiny > "$out/tu.out" 2> "$out/tu.err"
st=$?
[ $st = 1 ] && grep -q "1 objects, expected 2" "$out/tu.err" \
    && pass "clang-tu check catches a missing object" || fail "clang-tu check catches a missing object" "exit $st"
printf 'cd /\nprintf "\\177ELF" > "$OUT"/a.o\n' > "$out/tucache/clang/tu-tiny.sh"
TM_REAL_CACHE=$out/tucache bash workloads/real/neovim/tu.sh --clang --scale tiny > "$out/tu.out" 2> "$out/tu.err"
[ $? = 0 ] && grep -q "^check: ok$" "$out/tu.out" && grep -q '^TMBENCH {"ops": 1,' "$out/tu.out" \
    && pass "clang-tu check passes one good object" || fail "clang-tu check passes one good object" "$(cat "$out/tu.err")"
bash workloads/real/sqlite/run.sh --scale huge > /dev/null 2>&1
[ $? = 2 ] && pass "sqlite run rejects an unknown scale" || fail "sqlite run rejects an unknown scale"
if [ -e cache/real/sqlite/tiny.sql ]; then
    mkdir -p "$out/cache/sqlite"
    cp cache/real/sqlite/tiny.sql "$out/cache/sqlite/"
    sed '1s/^[0-9]*/999999/' cache/real/sqlite/tiny.expected > "$out/cache/sqlite/tiny.expected"
    TM_REAL_CACHE=$out/cache bash workloads/real/sqlite/run.sh --scale tiny > "$out/bad.out" 2> "$out/bad.err"
    st=$?
    [ $st = 1 ] && grep -q "output differs" "$out/bad.err" && ! grep -q "check: ok" "$out/bad.out" \
        && pass "sqlite check catches a wrong result" || fail "sqlite check catches a wrong result" "exit $st"
    rm -f "$out/cache/sqlite/tiny.sql"
    TM_REAL_CACHE=$out/cache bash workloads/real/sqlite/run.sh --scale tiny > /dev/null 2>&1
    [ $? = 3 ] && pass "sqlite run exits 3 when not prepared" || fail "sqlite run exits 3 when not prepared"
fi
exit $((fails > 0))
