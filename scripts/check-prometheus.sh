#!/usr/bin/env bash
# Checks the Prometheus alerting rules with promtool; runs no Prometheus server.
#
#   scripts/check-prometheus.sh [SCRAPE_FILE]
#   scripts/check-prometheus.sh --metrics SCRAPE_FILE   only the scrape (the rules are checked by the run above)
#
# promtool comes from PATH, else artifacts/tools/promtool, else is unpacked there from Debian's
# 'prometheus' package (apt-get download + dpkg-deb -x; the package is not installed, so no server
# is set up). Then: promtool check rules, promtool test rules, and with SCRAPE_FILE (a /metrics
# response saved by a test) promtool check metrics. Exits 0 only if all pass.
set -uo pipefail
cd "$(dirname "$0")/.."
metrics_only=0
if [ "${1:-}" = --metrics ]; then
  [ $# -eq 2 ] || { echo "check-prometheus: --metrics needs a scrape file" >&2; exit 2; }
  metrics_only=1
  shift
fi

rules=prometheus/socketreaper-alerts.yml
tests=prometheus/socketreaper-alerts.test.yml
tool=artifacts/tools/promtool
say() { printf 'check-prometheus: %s\n' "$*"; }

if command -v promtool >/dev/null 2>&1; then
  promtool=$(command -v promtool)
elif [ -x "$tool" ]; then
  promtool=$tool
else
  say "fetching promtool from the Debian package 'prometheus'"
  dl=$(mktemp -d)
  trap 'rm -rf "$dl"' EXIT
  # apt-get download needs package lists; fetch them only when the first try fails.
  if ! (cd "$dl" && apt-get download -qq prometheus >/dev/null 2>&1); then
    apt-get update -qq >/dev/null 2>&1
    (cd "$dl" && apt-get download -qq prometheus) || { say "FAIL: cannot download the prometheus package"; exit 1; }
  fi
  dpkg-deb -x "$dl"/prometheus_*.deb "$dl/root" || { say "FAIL: cannot unpack the prometheus package"; exit 1; }
  install -D -m 0755 "$dl/root/usr/bin/promtool" "$tool"
  promtool=$tool
fi
say "using $promtool ($("$promtool" --version 2>&1 | head -n1))"

failed=()
if [ "$metrics_only" -eq 0 ]; then
  "$promtool" check rules "$rules" || failed+=("check rules")
  "$promtool" test rules "$tests" || failed+=("test rules")
fi
if [ $# -ge 1 ]; then
  # check metrics lints names, types and help texts; it exits non-zero on any finding.
  "$promtool" check metrics <"$1" || failed+=("check metrics $1")
fi

if [ ${#failed[@]} -eq 0 ]; then
  if [ "$metrics_only" -eq 1 ]; then say "PASS: $1 lint-clean"; else say "PASS: rules valid, rule tests pass${1:+, $1 lint-clean}"; fi
  exit 0
fi
say "FAIL: $(IFS=','; echo "${failed[*]}")"
exit 1
