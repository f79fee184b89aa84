#!/usr/bin/env bash
# `npm test`: build, type-check the tests, run every tier with vitest, then print one plain
# summary line ("Tests: N passed, N failed, N skipped") that any CI can read.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh || exit 1
tsc -p tsconfig.test.json || exit 1
mkdir -p test-output
rm -f test-output/vitest.json
vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json "$@"
status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-output/vitest.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' || true
exit $status
