#!/usr/bin/env bash
# Makes sure the browser suites have Debian's Chromium. Installs it when missing and the machine allows it
# (root + apt-get); otherwise fails with the fix. A browser suite is never skipped silently.
set -euo pipefail

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  echo "Chromium: $chromium ($("$chromium" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable Chromium. Fix the path or unset it to use Debian's package." >&2
  exit 1
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: installing Debian's package (apt-get install chromium)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  echo "Chromium: $(/usr/bin/chromium --version)"
  exit 0
fi

cat >&2 <<'MSG'
The browser and end-to-end tests need Chromium, and it is not installed.
Install it, then run the tests again:
  Debian/Ubuntu:  sudo apt-get install -y chromium
  elsewhere:      install Chromium and set CHROMIUM_PATH=/path/to/chromium
(The tests never download a browser of their own.)
MSG
exit 1
