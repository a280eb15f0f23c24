#!/usr/bin/env bash
# `npm test`: installs what the tests need (Chromium, PostgreSQL), then type-checks, lints, builds the PWA and runs every
# suite — unit (Node), browser (Chromium) and end-to-end (relay + Chromium). Prints where the time went.
set -euo pipefail
cd "$(dirname "$0")/.."

timings=()
step() {
  local name=$1; shift
  echo
  echo "== $name"
  local t0=$SECONDS rc=0
  "$@" || rc=$?
  timings+=("$(printf '%-30s %5ss' "$name" $((SECONDS - t0)))")
  return $rc
}

step "chromium"                 bash test/support/ensure-chromium.sh
step "postgresql"               bash test/support/ensure-postgres.sh
step "check (types, lint)"      npm run --silent check
step "build (PWA)"              npm run --silent build
mkdir -p test-results
status=0
step "vitest (unit, browser, e2e)" npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json || status=$?

echo
echo "== time"
printf '%s\n' "${timings[@]}"
# One closing line in the plain form CI reads, from Vitest's own report; a file can fail with no test failing (a hook
# that timed out), so failed files are counted too.
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-results/vitest.json", "utf8"));
  const files = r.testResults.filter((f) => f.status === "failed").length;
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : "") + (files ? ` (${files} file${files === 1 ? "" : "s"} failed)` : ""));
' || true
exit $status
