#!/usr/bin/env bash
# compare.sh — measure splitdns against Unbound, dnsmasq and the authoritative baseline with the
# shared peer bench (../shared/bench, or $BENCH). Builds the release binary, starts the bench's
# servers if they are not running, starts splitdns as a bench target configured like the peers
# (corp.example -> 127.0.0.2:5300 with the bench's DS, everything else -> 127.0.0.3:5300), verifies
# it, runs the bench's compare.sh (its settings pass through: ROUNDS, DURATION, MIXES, LOADS, ...)
# and stops splitdns.
#
#   scripts/bench/compare.sh                     # all mixes, the bench's default rounds
#   MIXES="hit split" ROUNDS=3 scripts/bench/compare.sh
#   KEEP_TARGET=1 scripts/bench/compare.sh       # leave splitdns running afterwards
#   DAEMON_FLAGS="..." scripts/bench/compare.sh  # extra daemon flags
#   TLS=1 MIXES="miss split" scripts/bench/compare.sh
#       # both upstreams over DNS over TLS through the bench's DoT front (127.0.0.12:853, dot.test),
#       # against the bench's unbound-tls peer configured the same way (REF=unbound-tls)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BENCH=${BENCH:-$(cd "$repo/../shared/bench" 2>/dev/null && pwd || true)}
[ -n "$BENCH" ] && [ -x "$BENCH/compare.sh" ] || { echo "compare.sh: set BENCH to the shared bench directory" >&2; exit 2; }
ADDR=${SPLITDNS_BENCH_ADDR:-127.0.0.20:5301}
BIN=$repo/target/release/splitdns
STATE=${BENCH_STATE:-/tmp/dnsbench}

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
"$BENCH/install.sh" >/dev/null
if ! "$BENCH/verify.sh" "unbound=127.0.0.10:5301" >/dev/null 2>&1; then
  "$BENCH/gen-zones.sh" >/dev/null
  "$BENCH/start.sh" >/dev/null
fi
# shellcheck disable=SC1091
. "$STATE/ta/ta.env"
corp=127.0.0.2:5300
pub=127.0.0.3:5300
tls_flags=()
if [ -n "${TLS:-}" ]; then
  "$BENCH/start.sh" tls >/dev/null
  corp="tls://127.0.0.12#dot.test"
  pub="tls://127.0.0.12#dot.test"
  tls_flags=(--tls-ca-file "$STATE/tls/ca.pem")
fi
"$BENCH/stop.sh" splitdns >/dev/null 2>&1 || true
run=$(mktemp -d "${TMPDIR:-/tmp}/splitdns-bench.XXXXXX")
chmod 755 "$run"
sock=$run/control.sock
# The bench's anchor is for corp.example: whitelist it (the person's decision, made here for the bench).
printf '# splitdns bench\ncorp.example\n' >"$run/whitelist"
# The daemon itself is the bench's target process (so its CPU and memory are measured); the link
# is brought up through the control socket once it answers.
# shellcheck disable=SC2086
"$BENCH/start-target.sh" splitdns "$ADDR" -- "$BIN" --control-socket "$sock" daemon --listen "$ADDR" \
  --upstream "$pub" "${tls_flags[@]}" --state-dir "$run" --config /dev/null --whitelist "$run/whitelist" ${DAEMON_FLAGS:-}
"$BIN" --control-socket "$sock" link up --id bench --profile bench --server "$corp" \
  --domain corp.example --ta "$TA_DS"
"$BENCH/verify.sh" "splitdns=$ADDR" || echo "compare.sh: some verify checks failed (see above)" >&2
if [ -n "${TLS:-}" ]; then
  REF=unbound-tls "$BENCH/compare.sh" "unbound-tls=127.0.0.13:5301" "splitdns=$ADDR" "$@"
else
  "$BENCH/compare.sh" "+splitdns=$ADDR" "$@"
fi
[ -n "${KEEP_TARGET:-}" ] || "$BENCH/stop.sh" splitdns
