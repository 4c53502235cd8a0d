#!/usr/bin/env bash
# control.sh — how fast control-plane changes take effect.
#
#   scripts/bench/control.sh [N]   # N rounds (default 20); needs the shared bench's servers
#                                  # running (scripts/bench/compare.sh starts them)
#
# Starts the release daemon on a spare loopback address with the bench's upstreams and drives it
# from one python3 process (so no process start-up is counted; a hook adds its own exec time):
#  link_up_reply_ms   a link-up request (with the bench's DS anchor) on the control socket until
#                     its reply: the daemon replies once the routes are swapped in and the
#                     anchor's DNSKEY set is fetched and verified
#  link_up_answer_ms  the same request until the first answer, validated (AD), for a split name
#                     routed by the new link (the query is sent as soon as the reply arrives)
#  whitelist_ms       a person removes the zone from the whitelist (editor-style: write a new file,
#                     rename it over) until queries for the zone are no longer validated
# Prints min/median/max for each.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-20}
bin=$repo/target/release/splitdns
STATE=${BENCH_STATE:-/tmp/dnsbench}
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
# shellcheck disable=SC1091
. "$STATE/ta/ta.env"
addr=127.0.0.21; port=5301
tmp=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
printf 'corp.example\n' >"$tmp/whitelist"
"$bin" --control-socket "$tmp/c.sock" daemon --listen "$addr:$port" --upstream 127.0.0.3:5300 \
  --state-dir "$tmp" --config /dev/null --whitelist "$tmp/whitelist" 2>"$tmp/log" & pid=$!
for _ in $(seq 100); do [ -S "$tmp/c.sock" ] && break; sleep 0.05; done
python3 - "$tmp" "$addr" "$port" "$TA_DS" "$n" <<'PY'
import json, os, random, socket, struct, sys, time
tmp, addr, port, ds, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])

def ctl(req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(tmp, "c.sock"))
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    reply = json.loads(buf)
    assert reply.get("ok"), reply
    return reply

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(2)

def query(name):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    q += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)  # OPT with DO
    udp.sendto(q, (addr, port))
    while True:
        r, _ = udp.recvfrom(4096)
        if struct.unpack(">H", r[:2])[0] == qid:
            flags = struct.unpack(">H", r[2:4])[0]
            return flags & 0xF, bool(flags & 0x20)

link = {"id": "bench", "servers": ["127.0.0.2:5300"], "domains": ["corp.example"], "anchors": [ds]}
wl = os.path.join(tmp, "whitelist")
def write_whitelist(text):
    with open(wl + ".new", "w") as f:
        f.write(text)
    os.rename(wl + ".new", wl)

reply_ms, answer_ms, wl_ms = [], [], []
for i in range(n):
    ctl({"cmd": "link-down", "id": "bench"}) if i else None
    t0 = time.perf_counter()
    ctl({"cmd": "link-up", "link": link})
    t1 = time.perf_counter()
    rcode, ad = query(f"host{i + 1}.corp.example")
    t2 = time.perf_counter()
    assert rcode == 0 and ad, (rcode, ad)
    reply_ms.append((t1 - t0) * 1e3)
    answer_ms.append((t2 - t0) * 1e3)
    t0 = time.perf_counter()
    write_whitelist("# corp.example removed\n")
    k = 0
    while True:
        k += 1
        rcode, ad = query(f"r{i}-{k}.w.corp.example")
        if not ad:
            break
        time.sleep(0.002)
    wl_ms.append((time.perf_counter() - t0) * 1e3)
    write_whitelist("corp.example\n")
    time.sleep(0.3)

for what, v in (("link_up_reply_ms", reply_ms), ("link_up_answer_ms", answer_ms), ("whitelist_ms", wl_ms)):
    v.sort()
    print(f"{what} min={v[0]:.2f} median={v[len(v) // 2]:.2f} max={v[-1]:.2f} n={len(v)}")
PY
