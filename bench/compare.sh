#!/usr/bin/env bash
# compare.sh — measure splitdns against Unbound, dnsmasq and the authoritative baseline with the
# shared peer bench (../shared/bench, or $BENCH). Builds the release binary, starts the bench's
# servers if they are not running, starts splitdns as a bench target, verifies it, runs the bench's
# compare.sh (its settings pass through: ROUNDS, DURATION, MIXES, LOADS, ...) and stops splitdns.
#
#   bench/compare.sh                     # all mixes, the bench's default rounds
#   MIXES="hit split" ROUNDS=3 bench/compare.sh
#   KEEP_TARGET=1 bench/compare.sh       # leave splitdns running afterwards
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BENCH=${BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || true)}
[ -n "$BENCH" ] && [ -x "$BENCH/compare.sh" ] || { echo "compare.sh: set BENCH to the shared bench directory" >&2; exit 2; }
ADDR=${SPLITDNS_BENCH_ADDR:-127.0.0.20:5301}

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
"$BENCH/install.sh" >/dev/null
if ! "$BENCH/verify.sh" "unbound=127.0.0.10:5301" >/dev/null 2>&1; then
  "$BENCH/gen-zones.sh" >/dev/null
  "$BENCH/start.sh" >/dev/null
fi
"$BENCH/stop.sh" splitdns >/dev/null 2>&1 || true
"$BENCH/start-target.sh" splitdns "$ADDR" -- "$here/run-target.sh" "$ADDR"
# Give the background link-up a moment, then require routing to work before measuring.
for _ in $(seq 1 50); do
  kdig +time=1 +retry=0 @"${ADDR%:*}" -p "${ADDR##*:}" host1.corp.example A 2>/dev/null | grep -q 198.18 && break
  sleep 0.1
done
"$BENCH/verify.sh" "splitdns=$ADDR" || echo "compare.sh: some verify checks failed (see above)" >&2
"$BENCH/compare.sh" "+splitdns=$ADDR" "$@"
[ -n "${KEEP_TARGET:-}" ] || "$BENCH/stop.sh" splitdns
