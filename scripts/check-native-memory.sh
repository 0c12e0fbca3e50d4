#!/bin/sh
# Checks the native splice engine (native/) for memory errors, leaks and descriptor leaks:
#  1. native/test/driver.c (a few hundred pairings through every ending, over real loopback TCP)
#     built with AddressSanitizer + UndefinedBehaviorSanitizer (leak detection on);
#  2. the same driver built plainly, under valgrind --leak-check=full;
#  3. the addon inside Node (native/test/node-driver.mjs through SpliceEngine) under valgrind;
#     Node and V8 keep memory until exit by design, so only records whose allocating frame (for
#     leaks) or any frame (for invalid accesses) is in taas_splice.node count;
#  4. native/test/enomem.c: the core with allocations failing on demand (a pairing's end is still
#     reported, close commands are never dropped, relay_pair fails cleanly).
# CI runs it (.ci/run). Exit 0 when all four are clean. Needs gcc and valgrind (scripts/install-bench-deps.sh),
# and for step 3 the compiled dist/ and build/Release/taas_splice.node (npm run build, build:native).
#   scripts/check-native-memory.sh [pairings]     (default 300)
set -eu
cd "$(dirname "$0")/.."
N="${1:-300}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
SRC="native/test/driver.c native/relay.c native/worker.c native/pump.c native/pipe_pool.c native/bucket.c"
fail=0

echo "== 1/4 AddressSanitizer + UBSan: driver, $N pairings"
# shellcheck disable=SC2086
gcc -std=gnu11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -Wall -Wextra -pthread -o "$TMP/driver-asan" $SRC
if ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  "$TMP/driver-asan" "$N"; then echo "ASan/UBSan: clean"; else echo "ASan/UBSan: FAILED"; fail=1; fi

echo "== 2/4 valgrind: driver, $N pairings"
# shellcheck disable=SC2086
gcc -std=gnu11 -g -O1 -Wall -pthread -o "$TMP/driver" $SRC
if valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=3 "$TMP/driver" "$N"; then
  echo "valgrind (driver): clean"
else echo "valgrind (driver): FAILED"; fail=1; fi

echo "== 3/4 valgrind: the addon in Node, $((N / 2)) pairings"
if [ ! -f build/Release/taas_splice.node ] || [ ! -f dist/relay/engines/splice.js ]; then
  echo "build/Release/taas_splice.node or dist/ missing: run npm run build && npm run build:native"; exit 2
fi
# --exit-live: the process also exits with an engine still relaying, not shut down, so Node's
# teardown finalizes it (the threadsafe function and the engine handle, in either order).
valgrind --leak-check=full --show-leak-kinds=definite,indirect --num-callers=30 \
  --log-file="$TMP/node.vg" node native/test/node-driver.mjs "$((N / 2))" --exit-live || { echo "node driver FAILED"; fail=1; }
node - "$TMP/node.vg" <<'JS' || fail=1
// Splits the valgrind log into records and keeps those that are ours (see the header).
const fs = require('node:fs');
const text = fs.readFileSync(process.argv[2], 'utf8').replace(/^==\d+== ?/gm, '');
const records = text.split(/\n\s*\n/);
const alloc = /(malloc|calloc|realloc|operator new|memalign|posix_memalign)\b/;
const ours = [];
let leaksElsewhere = 0;
for (const r of records) {
  const lines = r.trim().split('\n');
  const head = lines[0] ?? '';
  const frames = lines.filter((l) => /^\s+(at|by) 0x/.test(l));
  if (/are (definitely|indirectly) lost/.test(head)) {
    const first = frames.find((f) => !alloc.test(f));
    if (first && first.includes('taas_splice.node')) ours.push(r.trim());
    else leaksElsewhere++;
  } else if (/^(Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination overlap)/.test(head)) {
    if (frames.some((f) => f.includes('taas_splice.node'))) ours.push(r.trim());
  }
}
if (ours.length) {
  console.log(`valgrind (addon in node): ${ours.length} record(s) in taas_splice.node:\n\n${ours.join('\n\n')}`);
  process.exit(1);
}
console.log(`valgrind (addon in node): clean (${leaksElsewhere} leak record(s) allocated by Node/V8 itself, not counted)`);
JS

echo "== 4/4 allocation failures: enomem"
# shellcheck disable=SC2086
gcc -std=gnu11 -g -O1 -Wall -Wextra -pthread -o "$TMP/enomem" native/test/enomem.c ${SRC#native/test/driver.c }
if "$TMP/enomem"; then echo "enomem: clean"; else echo "enomem: FAILED"; fail=1; fi

[ "$fail" -eq 0 ] && echo "check-native-memory: OK" || echo "check-native-memory: FAILED"
exit "$fail"
