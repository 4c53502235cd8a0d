#!/usr/bin/env bash
# Builds the Debian package and checks it end to end on this machine. Needs root (dpkg -i) on a
# Debian/Ubuntu machine with cargo; installs cargo-deb (cargo install --locked) if missing and
# systemd (for systemd-analyze) via apt if it can. Leaves the package purged, even on failure.
#
#   sudo bash packaging/ci-package.sh
#
# Steps: cargo deb; list and check the package's paths and modes; systemd-analyze verify the
# packaged unit and the notifier's user unit; dpkg -i; check the user, owners, modes and
# `splitdns --version`; run the INSTALLED binary with the PACKAGED config (overridden to a high
# loopback port and a temporary state dir and socket) against two tiny authoritative DNS servers on
# loopback; resolve a public name and, after `splitdns link up`, a split name; link down; stop;
# dpkg -r, dpkg -P and check nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=splitdns
START=$(date +%s)
fail() { echo "ci-package: FAIL: $*" >&2; exit 1; }
step() { echo "== ci-package: $* ($(( $(date +%s) - START ))s)"; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs and purges the package)"
command -v cargo >/dev/null || fail "cargo not found: install Rust first"
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found: this needs a Debian-based machine"
command -v python3 >/dev/null || fail "python3 not found (used for the test DNS servers and queries)"
dpkg -s "$PKG" >/dev/null 2>&1 && fail "$PKG is already installed here; remove it first (dpkg -P $PKG)"

tmp=$(mktemp -d /tmp/ci-package.XXXXXX)
chmod 0755 "$tmp"
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if dpkg -s "$PKG" >/dev/null 2>&1; then
        echo "ci-package: purging $PKG" >&2
        dpkg -P "$PKG" >/dev/null 2>&1 || echo "ci-package: WARNING: dpkg -P $PKG failed" >&2
    fi
    if [ "$rc" != 0 ] && [ -f "$tmp/daemon.log" ]; then
        echo "---- daemon log (last 40 lines) ----" >&2
        tail -n 40 "$tmp/daemon.log" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

step "tools"
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked || fail "cannot install cargo-deb"
fi
cargo deb --version
if ! command -v systemd-analyze >/dev/null && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; } ||
        echo "ci-package: note: could not install systemd; skipping systemd-analyze" >&2
fi

step "cargo deb"
deb=$(cargo deb --locked 2>"$tmp/cargo-deb.log" | tail -n 1) || { cat "$tmp/cargo-deb.log" >&2; fail "cargo deb failed"; }
[ -f "$deb" ] || { cat "$tmp/cargo-deb.log" >&2; fail "cargo deb did not print a .deb path (got: $deb)"; }
grep -i "warning" "$tmp/cargo-deb.log" >&2 || true
echo "$deb"

step "dpkg-deb -I / -c"
dpkg-deb -I "$deb"
dpkg-deb -c "$deb" | tee "$tmp/contents"
# path, mode, owner as dpkg-deb -c prints them
expect=(
    "./usr/bin/splitdns -rwxr-xr-x root/root"
    "./usr/lib/systemd/system/splitdns.service -rw-r--r-- root/root"
    "./usr/lib/systemd/user/splitdns-notify.service -rw-r--r-- root/root"
    "./etc/xdg/autostart/splitdns-notify.desktop -rw-r--r-- root/root"
    "./etc/splitdns/config.toml -rw-r--r-- root/root"
    "./etc/splitdns/whitelist -rw-r--r-- root/root"
    "./usr/libexec/splitdns/90-splitdns -rwxr-xr-x root/root"
    "./usr/libexec/splitdns/splitdns-openvpn-dns-updown -rwxr-xr-x root/root"
    "./usr/libexec/splitdns/splitdns-updown-libreswan -rwxr-xr-x root/root"
    "./usr/libexec/splitdns/splitdns-updown-strongswan -rwxr-xr-x root/root"
    "./usr/share/doc/splitdns/examples/openvpn-splitdns.conf -rw-r--r-- root/root"
    "./usr/share/doc/splitdns/examples/wg-quick-splitdns.conf -rw-r--r-- root/root"
    "./usr/share/doc/splitdns/README.md -rw-r--r-- root/root"
    "./usr/share/doc/splitdns/CHANGELOG.md -rw-r--r-- root/root"
)
dpkg-deb --fsys-tarfile "$deb" | tar -tv --numeric-owner -f - |
    awk '{ sub(/^0\/0$/, "root/root", $2); print $6, $1, $2 }' >"$tmp/modes"
for e in "${expect[@]}"; do
    grep -qxF "$e" "$tmp/modes" || fail "package lacks or has wrong mode/owner for: $e (have: $(grep -F "${e%% *} " "$tmp/modes" || echo nothing))"
done
awk 'substr($2, 6, 1) == "w" || substr($2, 9, 1) == "w"' "$tmp/modes" | grep . &&
    fail "group- or world-writable entries in the package (above)"
dpkg-deb -f "$deb" Package Version Architecture Section Priority Depends
dpkg-deb -e "$deb" "$tmp/control"
grep -qxF /etc/splitdns/config.toml "$tmp/control/conffiles" || fail "config.toml is not a conffile"
grep -qxF /etc/splitdns/whitelist "$tmp/control/conffiles" || fail "whitelist is not a conffile"
grep -qxF /etc/xdg/autostart/splitdns-notify.desktop "$tmp/control/conffiles" ||
    fail "the autostart file is not a conffile (an administrator's edit, e.g. Hidden=true, must survive upgrades)"
for s in postinst prerm postrm; do
    sh -n "$tmp/control/$s" || fail "$s does not parse"
done
grep -vhE '^\s*(#|echo )' "$tmp/control/postinst" "$tmp/control/postrm" | grep -E 'resolv\.conf|systemctl +(enable|start)|deb-systemd-invoke +start' &&
    fail "maintainer scripts enable/start the service or touch resolv.conf (above)"

step "dpkg -i"
dpkg -i "$deb" | tee "$tmp/dpkg-i.log"
grep -q "systemctl enable --now splitdns" "$tmp/dpkg-i.log" || fail "postinst did not print the start hint"
getent passwd splitdns >/dev/null || fail "user splitdns was not created"
getent group splitdns >/dev/null || fail "group splitdns was not created"
shell=$(getent passwd splitdns | cut -d: -f7)
case "$shell" in */nologin | */false) ;; *) fail "user splitdns has a login shell: $shell" ;; esac
[ "$(id -u splitdns)" -lt 1000 ] || fail "splitdns is not a system user (uid $(id -u splitdns))"
/usr/bin/splitdns --version | grep -q "^splitdns " || fail "/usr/bin/splitdns --version failed"
/usr/bin/splitdns --version
check_stat() { # path expected "mode owner:group"
    local got
    got=$(stat -c '%a %U:%G' "$1") || fail "$1 is missing"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
check_stat /usr/bin/splitdns "755 root:root"
check_stat /etc/splitdns "755 root:root"
check_stat /etc/splitdns/config.toml "644 root:root"
check_stat /etc/splitdns/whitelist "644 root:root"
check_stat /usr/lib/systemd/system/splitdns.service "644 root:root"
check_stat /usr/libexec/splitdns/90-splitdns "755 root:root"
check_stat /usr/lib/systemd/user/splitdns-notify.service "644 root:root"
check_stat /etc/xdg/autostart/splitdns-notify.desktop "644 root:root"
# The notifier: the user unit starts the installed binary; the autostart file too, and is skipped by
# systemd-managed sessions (which use the user unit), so no session starts it twice.
grep -qxF "ExecStart=/usr/bin/splitdns notify" /usr/lib/systemd/user/splitdns-notify.service ||
    fail "splitdns-notify.service does not run /usr/bin/splitdns notify"
grep -qxF "Exec=/usr/bin/splitdns notify" /etc/xdg/autostart/splitdns-notify.desktop ||
    fail "splitdns-notify.desktop does not run /usr/bin/splitdns notify"
grep -qxF "X-systemd-skip=true" /etc/xdg/autostart/splitdns-notify.desktop ||
    fail "splitdns-notify.desktop lacks X-systemd-skip=true: systemd sessions would start the notifier twice"
/usr/bin/splitdns notify --help >/dev/null || fail "the installed binary has no notify command"
systemctl --global is-enabled splitdns-notify.service >/dev/null 2>&1 &&
    fail "the package enabled splitdns-notify.service for every user (each person, or an administrator, chooses)"
[ -e /var/lib/splitdns ] && fail "/var/lib/splitdns exists before the service ever ran"
if [ -d /run/systemd/system ]; then
    systemctl is-enabled splitdns.service >/dev/null 2>&1 && fail "the package enabled splitdns.service"
    systemctl is-active splitdns.service >/dev/null 2>&1 && fail "the package started splitdns.service"
fi

if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify (installed unit)"
    # Not booted with systemd (containers), verify still loads and checks the unit file offline.
    if ! systemd-analyze verify /usr/lib/systemd/system/splitdns.service >"$tmp/verify.log" 2>&1; then
        cat "$tmp/verify.log" >&2
        fail "systemd-analyze verify reported problems (above)"
    fi
    cat "$tmp/verify.log"
    echo "systemd-analyze verify: clean"
    step "systemd-analyze --user verify (installed user unit)"
    # A user manager's checks need a runtime directory; any private one will do offline.
    mkdir -m 0700 "$tmp/xdg-runtime"
    if ! XDG_RUNTIME_DIR="$tmp/xdg-runtime" systemd-analyze --user verify \
        /usr/lib/systemd/user/splitdns-notify.service >"$tmp/verify-user.log" 2>&1 || [ -s "$tmp/verify-user.log" ]; then
        cat "$tmp/verify-user.log" >&2
        fail "systemd-analyze --user verify reported problems with splitdns-notify.service (above)"
    fi
    echo "systemd-analyze --user verify: clean"
else
    echo "ci-package: note: systemd-analyze not available; the unit was not verified" >&2
fi

step "test DNS servers on loopback"
# One tiny authoritative UDP server: answers every A query with the address given, TTL 60.
cat >"$tmp/auth.py" <<'PY'
import socket, struct, sys
port_file, answer = sys.argv[1], socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(port_file + ".tmp", "w").write(str(s.getsockname()[1]))
__import__("os").rename(port_file + ".tmp", port_file)
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    qid, flags = struct.unpack(">HH", q[:4])
    i = 12
    while i < len(q) and q[i] != 0:
        i += q[i] + 1
    question = q[12:i + 5]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
    an = b""
    if qtype == 1:
        an = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + answer
    rflags = 0x8400 | (flags & 0x0100)          # QR, AA, copy RD
    s.sendto(struct.pack(">HHHHHH", qid, rflags, 1, 1 if an else 0, 0, 0) + question + an, peer)
PY
# A stub query: prints the A answers of NAME from 127.0.0.1:PORT, exits 1 without one.
cat >"$tmp/query.py" <<'PY'
import random, socket, struct, sys
name, port = sys.argv[1], int(sys.argv[2])
qid = random.randrange(65536)
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, ("127.0.0.1", port))
r = s.recv(4096)
rid, flags, qd, an = struct.unpack(">HHHH", r[:8])
if rid != qid:
    sys.exit("id mismatch")
if flags & 0xF:
    sys.exit(f"rcode {flags & 0xF}")
i = len(q)
out = []
for _ in range(an):
    if r[i] & 0xC0 == 0xC0:
        i += 2
    else:
        while r[i]:
            i += r[i] + 1
        i += 1
    t, c, ttl, rdlen = struct.unpack(">HHIH", r[i:i + 10])
    i += 10
    if t == 1:
        out.append(socket.inet_ntoa(r[i:i + rdlen]))
    i += rdlen
if not out:
    sys.exit("no A record in the answer")
print(" ".join(out))
PY
python3 "$tmp/auth.py" "$tmp/public.port" 192.0.2.1 &
pids+=($!)
python3 "$tmp/auth.py" "$tmp/corp.port" 10.9.8.7 &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/public.port" ] && [ -s "$tmp/corp.port" ] && break; sleep 0.1; done
[ -s "$tmp/public.port" ] && [ -s "$tmp/corp.port" ] || fail "the test DNS servers did not start"
public_port=$(cat "$tmp/public.port")
corp_port=$(cat "$tmp/corp.port")
echo "public upstream 127.0.0.1:$public_port (answers 192.0.2.1), corp server 127.0.0.1:$corp_port (answers 10.9.8.7)"

step "installed daemon, packaged config"
listen_port=25353
sock="$tmp/c.sock"
export SPLITDNS_SOCKET="$sock"
/usr/bin/splitdns --control-socket "$sock" daemon --config /etc/splitdns/config.toml \
    --listen "127.0.0.1:$listen_port" --state-dir "$tmp/state" \
    --upstream "127.0.0.1:$public_port" --log-format text >"$tmp/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
for _ in $(seq 100); do
    grep -q "ready" "$tmp/daemon.log" && break
    kill -0 "$daemon" 2>/dev/null || fail "the daemon exited at start"
    sleep 0.1
done
grep -q "ready" "$tmp/daemon.log" || fail "the daemon did not become ready in 10 s"
grep -iE "warn|error" "$tmp/daemon.log" && fail "the daemon warned at start with the packaged config (above)"
check_stat "$sock" "660 root:splitdns"

got=$(python3 "$tmp/query.py" www.debian.org "$listen_port") || fail "public name did not resolve through splitdns"
[ "$got" = 192.0.2.1 ] || fail "www.debian.org resolved to '$got', expected 192.0.2.1 (the upstream)"
echo "www.debian.org -> $got (default upstream)"

/usr/bin/splitdns link up --id ci0 --profile corp --server "127.0.0.1:$corp_port" --domain corp.example ||
    fail "splitdns link up failed"
got=$(python3 "$tmp/query.py" www.corp.example "$listen_port") || fail "split name did not resolve through splitdns"
[ "$got" = 10.9.8.7 ] || fail "www.corp.example resolved to '$got', expected 10.9.8.7 (the link's server)"
echo "www.corp.example -> $got (link ci0)"
got=$(python3 "$tmp/query.py" www.othercorp.example "$listen_port") || fail "non-split name did not resolve"
[ "$got" = 192.0.2.1 ] || fail "www.othercorp.example went to '$got', expected the default upstream"
/usr/bin/splitdns status | tee "$tmp/status"
grep -q corp.example "$tmp/status" || fail "status does not show corp.example"
[ -f "$tmp/state/links.json" ] || fail "no links.json in the state dir"
/usr/bin/splitdns link down --id ci0 || fail "splitdns link down failed"
got=$(python3 "$tmp/query.py" www.corp.example "$listen_port") || fail "name did not resolve after link down"
[ "$got" = 192.0.2.1 ] || fail "after link down www.corp.example went to '$got', expected the default upstream"

kill -TERM "$daemon"
for _ in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon" 2>/dev/null && fail "the daemon did not stop on SIGTERM within 5 s"
wait "$daemon" || fail "the daemon exited non-zero on SIGTERM"
[ -e "$sock" ] && fail "the control socket was left behind"
grep -q "stopped" "$tmp/daemon.log" || fail "the daemon did not log a clean stop"
[ -e /var/lib/splitdns ] && fail "the test run wrote /var/lib/splitdns (override ignored?)"

step "dpkg -r"
mkdir -p /var/lib/splitdns && echo '{}' >/var/lib/splitdns/links.json   # as if the service had run
dpkg -r "$PKG"
[ -e /usr/bin/splitdns ] && fail "/usr/bin/splitdns left after dpkg -r"
[ -e /usr/lib/systemd/system/splitdns.service ] && fail "unit left after dpkg -r"
[ -e /usr/lib/systemd/user/splitdns-notify.service ] && fail "user unit left after dpkg -r"
[ -f /etc/splitdns/config.toml ] || fail "dpkg -r removed the conffile config.toml (it should stay until purge)"
getent passwd splitdns >/dev/null || fail "dpkg -r removed the user (only purge should)"

step "dpkg -P"
dpkg -P "$PKG"
dpkg -s "$PKG" >/dev/null 2>&1 && fail "$PKG still known to dpkg after purge"
[ -e /etc/splitdns ] && fail "/etc/splitdns left after purge: $(ls -A /etc/splitdns)"
[ -e /etc/xdg/autostart/splitdns-notify.desktop ] && fail "the autostart file was left after purge"
[ -e /var/lib/splitdns ] && fail "/var/lib/splitdns left after purge"
getent passwd splitdns >/dev/null && fail "user splitdns left after purge"
getent group splitdns >/dev/null && fail "group splitdns left after purge"

step "all checks passed"
echo "ci-package: OK in $(( $(date +%s) - START ))s"
