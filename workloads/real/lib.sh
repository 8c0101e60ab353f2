# Sourced by the run steps of the real workloads (bash). Sets ROOT, CACHE, SCALE, TMP and
# gives: parse_scale "$@", need FILE..., fail MSG, tmbench OPS SECONDS [EXTRA_JSON].
# The environment is kept as it is: the harness's LD_PRELOAD reaches the measured program.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${TM_REAL_CACHE:-$ROOT/cache/real}   # TM_REAL_CACHE: for the tests only
SCALE=default
: "${WL:?}" "${PREP:?}"

parse_scale() {
    while [ $# -gt 0 ]; do
        case $1 in
            --scale) SCALE=${2:-}; shift 2 || shift ;;
            --scale=*) SCALE=${1#*=}; shift ;;
            default|quick|tiny) SCALE=$1; shift ;;
            -h|--help) echo "usage: $0 [--scale default|quick|tiny]"; exit 0 ;;
            *) echo "$WL: unknown argument '$1'" >&2; exit 2 ;;
        esac
    done
    case $SCALE in default|quick|tiny) ;; *) echo "$WL: unknown scale '$SCALE'" >&2; exit 2 ;; esac
}

need() {
    local f
    for f; do
        [ -e "$f" ] || { echo "$WL: $f is missing: run workloads/real/prepare.py $PREP" >&2; exit 3; }
    done
}

fail() { echo "$WL: $*" >&2; exit 1; }

mktmp() {
    mkdir -p "$CACHE/tmp"
    TMP=$(mktemp -d "$CACHE/tmp/$WL.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
}

# seconds between two $EPOCHREALTIME values
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

tmbench() {
    awk -v ops="$1" -v s="$2" -v extra="${3:-}" 'BEGIN {
        printf "TMBENCH {\"ops\": %d, \"seconds\": %.6f, \"ops_per_sec\": %.3f%s}\n", ops, s, (s > 0 ? ops / s : 0), (extra != "" ? ", " extra : "") }'
}
