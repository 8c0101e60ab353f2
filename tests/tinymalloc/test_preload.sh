#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libtinymalloc.so: each output must equal the output without
# the preload, and each run must prove tinymalloc served it (its JSON statistics, written per
# process, count allocations), so a preload that silently did not apply fails.
set -u
root=${TM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
lib="$root/build/release/libtinymalloc.so"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -f "$lib" ] || { echo "FAIL: library missing: $lib"; exit 1; }

cat > "$work/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[40]; };
int main(void) {
    struct node *head = NULL;
    for (int i = 0; i < 1000; i++) {
        struct node *n = malloc(sizeof *n);
        snprintf(n->name, sizeof n->name, "node-%d", i);
        n->next = head;
        head = n;
    }
    unsigned long h = 0;
    for (struct node *n = head; n; n = n->next) h = h * 31 + strlen(n->name);
    printf("%lu\n", h);
    return 0;
}
C
seq 1 50000 | awk '{print ($1 * 7919) % 100003, "line", $1}' > "$work/input.txt"
git -C "$work" init -q repo && cp "$work/input.txt" "$work/repo/" && \
    git -C "$work/repo" -c user.email=t@t -c user.name=t add input.txt && \
    git -C "$work/repo" -c user.email=t@t -c user.name=t commit -qm input

# name | command (run in $work)
tests=(
  "gcc|gcc -O2 -c prog.c -o prog.o && gcc prog.o -o prog && ./prog"
  "python3|PYTHONMALLOC=malloc /usr/bin/python3 -c 'import json,collections; d=collections.Counter(w for l in open(\"input.txt\") for w in l.split()); print(len(json.dumps(d)), d.most_common(3))'"
  "sort|sort -n input.txt | md5sum"
  "git|git -C repo log --stat --format=%s | md5sum && git -C repo cat-file -p HEAD:input.txt | wc -l"
  "perl|perl -e 'my %h; while (<>) { my @f = split; \$h{\$f[0]} .= \$f[2]; } print scalar(keys %h), \" \", length(join(q(,), sort keys %h)), \"\n\"' input.txt"
  "bash|bash -c 'a=(); for i in \$(seq 1 3000); do a+=(\"item\$i\"); done; s=\"\${a[*]}\"; echo \${#a[@]} \${#s}'"
)

fails=0
for t in "${tests[@]}"; do
  name=${t%%|*}; cmd=${t#*|}
  if ! command -v "${cmd%% *}" >/dev/null 2>&1 && [[ $cmd != PYTHONMALLOC* ]]; then
    echo "SKIP: $name (not installed)"; continue
  fi
  rm -f "$work"/stats.*.json
  expected=$(cd "$work" && bash -c "$cmd" 2>&1); rc1=$?
  got=$(cd "$work" && LD_PRELOAD="$lib" TINYMALLOC_CONF="stats:json,stats_file:$work/stats.%p.json" bash -c "$cmd" 2>&1); rc2=$?
  # Some process of the command counted allocations in tinymalloc's own statistics.
  served=$(cat "$work"/stats.*.json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    if line.strip():
        d = json.loads(line)
        n += sum(c["allocs"] for c in d["classes"]) + d["huge"]["allocs"]
print(n)')
  if [ "$rc1" -ne 0 ]; then
    echo "FAIL: $name (fails without the preload too: $expected)"; fails=$((fails+1))
  elif [ "$rc2" -ne 0 ] || [ "$expected" != "$got" ]; then
    echo "  expected: $expected"; echo "  got:      $got"
    echo "FAIL: $name"; fails=$((fails+1))
  elif [ "${served:-0}" -le 0 ]; then
    echo "FAIL: $name (tinymalloc's statistics counted no allocation: preload not applied)"; fails=$((fails+1))
  else
    echo "PASS: $name ($served allocations served by tinymalloc)"
  fi
done
exit $((fails > 0))
