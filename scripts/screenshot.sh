#!/bin/sh
# screenshot.sh — docs/report.png, the README's picture of report.html:
# runs the homework, models/seed_study.json (or only reports it when the
# database holds its runs already), then takes chromium's screenshot of
# the top of the page. `make screenshot` runs it.
set -eu
BUILD=${BUILD:-build}
out=out/seed_study
profile=$(mktemp -d /tmp/mlpc-screenshot-XXXXXX)
trap 'rm -rf "$profile"' EXIT
"$BUILD/mlpc" models/seed_study.json --run --out "$out" >/dev/null
nice chromium --headless --disable-gpu --no-sandbox --no-first-run --disable-extensions \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1100,1250 \
  --screenshot=docs/report.png "file://$PWD/$out/report.html" >/dev/null 2>&1
echo "screenshot: docs/report.png, of $out/report.html"
