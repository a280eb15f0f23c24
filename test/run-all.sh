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
rm -f test-results/*.json test-results/e2e.log
# End-to-end files run one at a time (each drives a relay and a Chromium of its own), and Vitest runs such a project
# only after every other file: e2e goes in a second Vitest beside unit and browser, so that stretch is not spent alone.
# Its output is kept apart and printed when both are done.
vitest() {
  npx vitest run --reporter=default --reporter=json --outputFile.json="test-results/$1.json" "${@:2}"
}
run_suites() {
  vitest e2e --project e2e > test-results/e2e.log 2>&1 &
  local e2e=$! rc=0
  vitest unit-browser --project unit --project browser || rc=$?
  wait $e2e || rc=$?
  echo
  echo "== e2e"
  cat test-results/e2e.log
  return $rc
}
status=0
step "vitest (unit, browser, e2e)" run_suites || status=$?

echo
echo "== time"
printf '%s\n' "${timings[@]}"
# One closing line in the plain form CI reads, from Vitest's own reports.
node -e '
  const fs = require("fs");
  const total = { pass: 0, fail: 0, skip: 0, files: 0 };
  for (const name of ["unit-browser", "e2e"]) {
    const file = `test-results/${name}.json`;
    if (!fs.existsSync(file)) { console.log(`${name}: no report (Vitest did not finish)`); total.fail++; continue; }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    total.pass += r.numPassedTests; total.fail += r.numFailedTests; total.skip += r.numPendingTests + r.numTodoTests; total.files += r.testResults.filter((f) => f.status === "failed").length;
  }
  // A file can fail with no test failing (a hook that timed out): it is counted too.
  console.log(`${total.pass} passed, ${total.fail} failed` + (total.skip ? `, ${total.skip} skipped` : "") + (total.files ? ` (${total.files} file${total.files === 1 ? "" : "s"} failed)` : ""));
' || true
exit $status
