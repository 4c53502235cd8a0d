#!/usr/bin/env bash
# run-target.sh — splitdns in the foreground, configured like the shared bench's peers:
# corp.example -> 127.0.0.2:5300 with the bench's DS, everything else -> 127.0.0.3:5300.
# Meant for ../shared/bench/start-target.sh, which pins it to a core and records its PID: the link is
# brought up by a background helper through the control socket, and this script execs the daemon so
# the recorded PID is the server itself.
#
#   run-target.sh ADDR:PORT [extra daemon flags...]
set -euo pipefail
addr=${1:?usage: run-target.sh ADDR:PORT [daemon flags...]}; shift
bin=${SPLITDNS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/splitdns}
ta_env=${BENCH_STATE:-/tmp/dnsbench}/ta/ta.env
# shellcheck disable=SC1090
. "$ta_env"
state=$(mktemp -d "${TMPDIR:-/tmp}/splitdns-bench.XXXXXX")
sock=$state/control.sock
(
  for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
  "$bin" --control-socket "$sock" link up --id bench --profile bench \
    --server 127.0.0.2:5300 --domain corp.example --ta "$TA_DS" >&2
) &
exec "$bin" --control-socket "$sock" daemon --listen "$addr" --upstream 127.0.0.3:5300 \
  --state-dir "$state" --config /dev/null "$@"
