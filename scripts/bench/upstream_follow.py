#!/usr/bin/env python3
"""How long a change of the followed resolv.conf takes to reach the default upstream.

Usage: scripts/bench/upstream_follow.py [BINARY] [ROUNDS]  (default: target/release/splitdns, 20)
Starts a daemon following a temporary resolv.conf, replaces the file by rename ROUNDS times (as
network managers do) and times each rename until `status` shows the new server.
"""
import json, os, socket, subprocess, sys, tempfile, time
here = os.path.dirname(os.path.abspath(__file__))
bin_ = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "target", "release", "splitdns")
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
d = tempfile.mkdtemp(); resolv = os.path.join(d, "resolv.conf"); sock = os.path.join(d, "control.sock")
open(os.path.join(d, "config.toml"), "w").write(f'resolv_conf = "{resolv}"\n')
open(resolv, "w").write("nameserver 192.0.2.1\n")
p = subprocess.Popen([bin_, "--control-socket", sock, "daemon", "--listen", "127.0.0.1:0", "--config", os.path.join(d, "config.toml"),
    "--state-dir", os.path.join(d, "state"), "--whitelist", os.path.join(d, "wl")], stderr=subprocess.DEVNULL)
def status():
    s = socket.socket(socket.AF_UNIX); s.connect(sock); s.sendall(b'{"cmd":"status"}\n')
    buf = b""
    while not buf.endswith(b"\n"): buf += s.recv(65536)
    s.close(); return json.loads(buf)["result"]
for _ in range(200):
    try: status(); break
    except Exception: time.sleep(0.05)
times = []
for i in range(rounds):
    ip = "192.0.2.2" if i % 2 == 0 else "192.0.2.1"
    want = ip + ":53"
    tmp = resolv + ".new"; open(tmp, "w").write(f"nameserver {ip}\n")
    t0 = time.monotonic(); os.rename(tmp, resolv)
    while True:
        st = status()
        if [x["addr"] for x in st["default_upstream"]["servers"]] in ([want], [ip]): break
        time.sleep(0.001)
    times.append((time.monotonic() - t0) * 1000); time.sleep(0.2)
p.terminate(); p.wait()
times.sort()
print(f"rename -> new default upstream, {rounds} rounds: min {times[0]:.1f} ms, median {times[len(times)//2]:.1f} ms, max {times[-1]:.1f} ms")
