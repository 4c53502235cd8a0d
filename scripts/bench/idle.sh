#!/usr/bin/env bash
# idle.sh — what a laptop user would notice: cold start to first answer, idle RSS, idle wake-ups.
#
#   scripts/bench/idle.sh [SECONDS]      # default: watch the idle daemon for 60 s
#
# Starts the release binary on a spare loopback address with a tiny upstream (python3, loopback
# only), measures the time from exec to the first answer, brings a link up, then counts context
# switches (voluntary + involuntary, all threads) while nothing queries it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
bin=$repo/target/release/splitdns
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
tmp=$(mktemp -d); trap 'kill $up_pid $pid 2>/dev/null; rm -rf "$tmp"' EXIT
# A minimal upstream: answers every A query with 192.0.2.1 (just enough for "first answer").
python3 - "$tmp/port" <<'PY' & up_pid=$!
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    q, a = s.recvfrom(512)
    hdr = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00"
    end = 12
    while q[end] != 0: end += q[end] + 1
    question = q[12:end + 5]
    s.sendto(hdr + question + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01", a)
PY
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
addr=127.0.0.77:25353
t0=$(date +%s%N)
"$bin" --control-socket "$tmp/c.sock" daemon --config /dev/null --listen "$addr" --upstream "127.0.0.1:$port" \
  --state-dir "$tmp" --whitelist "$tmp/whitelist" 2>"$tmp/log" & pid=$!
until python3 - "$addr" <<'PY' 2>/dev/null
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.02)
s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01", (host, int(port)))
s.recvfrom(512)
PY
do :; done
t1=$(date +%s%N)
echo "cold_start_to_first_answer_ms=$(( (t1 - t0) / 1000000 ))"
"$bin" --control-socket "$tmp/c.sock" link up --id idle --server 127.0.0.1:$port --domain corp.example >/dev/null
sleep 1
rss() { awk '/^VmRSS:/{print $2}' "/proc/$pid/status"; }
switches() { cat /proc/$pid/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
echo "threads=$(ls /proc/$pid/task | wc -l) rss_kb_after_start=$(rss)"
before=$(switches); sleep "$secs"; after=$(switches)
echo "idle_seconds=$secs context_switches=$((after - before)) wakeups_per_minute=$(( (after - before) * 60 / secs )) rss_kb_idle=$(rss)"
