//! The daemon end of the control socket.
//!
//! **Who.** Each connection's kernel credentials (SO_PEERCRED) are read the moment it is accepted,
//! before it takes a slot: root, the daemon's own user, and members of the configured
//! `control_group` (by primary group, or listed in the group when the daemon started) may talk to
//! it. Any other peer is sent one error line and closed; it never holds a slot, so refused peers,
//! however many, cannot crowd out permitted ones. The check makes no user-database lookup (the
//! group's members are resolved to uids at start), so a flood of connections cannot stall the
//! accept loop on NSS.
//!
//! **How many.** Slots are per class ([`super::limits`]): root has 64 of its own and the
//! daemon's user (if not root) 64 more, which control_group members can never take; members get
//! 8 per user and 32 together. Hooks run as root, so a hung hook is a root connection: when root's
//! slots are full, a new root connection takes over the one that has waited longest on its client
//! (for a request line, or to read a reply), and that one is told why. A new root connection is
//! refused only while all 64 are executing requests, which the daemon itself bounds (a `link up`
//! settles within 3 s); a burst of hung root hooks therefore never keeps a fresh one out. Members
//! beyond their share are refused with an error line saying so.
//!
//! **How long.** A complete request line must arrive within [`LINE_DEADLINE`] (5 s) of the accept,
//! and each later one within 5 s of the previous reply. This is a deadline, not an idle timer:
//! a client that trickles a byte every second is closed at 5 s all the same (slowloris). A reply
//! must be written within [`WRITE_DEADLINE`]. A connection past either is closed with an error
//! line. Requests are read one line at a time, at most [`MAX_REQUEST`] bytes; a malformed or
//! oversized request gets an error reply and changes nothing.
//!
//! **Refusals are read, not EPIPE.** A refused or closed connection gets its error line, then the
//! daemon shuts down its writing side and reads and discards what the client still sends, until
//! the client's end-of-file, for at most [`LINGER`] and [`MAX_REQUEST`] bytes, so that the close
//! does not reset a connection whose client is still writing its request. Lingering holds no
//! slot; past 64 lingering connections, the line is written and the connection closed at once
//! (the client in [`super::client`] reads a waiting reply even after a failed write). So the
//! control socket holds at most 160 + 64 descriptors, well within the usual soft limit of 1024.
//!
//! **Long-lived requests.** The deadline is applied only while waiting for a request line
//! (`Connection::next_line`). A request that keeps the connection (`watch`, which streams events)
//! is dispatched in `serve_connection` after its line is parsed, takes the `Connection` by value
//! and leaves the request loop, so no line deadline applies to it; it keeps its slot, and a uid
//! holds at most [`MAX_WATCHERS_PER_UID`] watch streams besides.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::ControlApi;
use super::events::{Event, EventKind};
use super::limits::{Admission, Class, Closing, Limits, Refusal, Slot};
use super::protocol::{MAX_REQUEST, Reply, Request};

/// From the accept, or from the previous reply, to a complete request line.
pub(crate) const LINE_DEADLINE: Duration = Duration::from_secs(5);
/// For writing one reply line.
pub(crate) const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a closing connection is still read, so that its client reads the last line.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// How long the accept loop pauses when accepting fails (out of descriptors): retrying at once
/// would spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one refusal, and one take-over, is logged per this period; the rest are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Who may use the socket, and for what.
#[derive(Debug, Clone)]
pub(crate) struct PeerPolicy {
    pub daemon_uid: u32,
    /// `control_group`: full access, like root.
    pub group: Option<ControlGroup>,
    /// `watch_group`: `status`, `query` and `watch` only (a desktop notifier needs no more).
    pub watch_group: Option<ControlGroup>,
}

/// What a permitted peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Every request: root, the daemon's user, `control_group` members.
    Full,
    /// Requests that only read (`status`, `query`, `watch`): `watch_group` members.
    ReadOnly,
}

/// Watch streams one uid may hold open at once.
pub(crate) const MAX_WATCHERS_PER_UID: usize = 4;
/// A watch stream's socket send buffer: what a subscriber may leave unread before it lags.
const WATCH_SNDBUF: usize = 16 * 1024;

/// A group (control or watch) as read when the daemon started.
#[derive(Debug, Clone)]
pub(crate) struct ControlGroup {
    pub name: String,
    pub gid: u32,
    /// The uids of the users the group lists as members.
    pub member_uids: Vec<u32>,
}

impl PeerPolicy {
    /// Builds the policy for this process, resolving the groups and their members by name.
    pub(crate) fn for_this_process(group: Option<&str>, watch_group: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            daemon_uid: nix::unistd::geteuid().as_raw(),
            group: group.map(|name| ControlGroup::resolve(name, "control_group")).transpose()?,
            watch_group: watch_group.map(|name| ControlGroup::resolve(name, "watch_group")).transpose()?,
        })
    }

    /// The group the socket file belongs to, so that its members can reach it: `watch_group` if
    /// set (its members are the widest set), else `control_group`.
    pub(crate) fn group_gid(&self) -> Option<u32> {
        self.watch_group.as_ref().or(self.group.as_ref()).map(|g| g.gid)
    }

    /// What a peer is and may do, or `None` if it may not send requests.
    pub(crate) fn access(&self, uid: u32, gid: u32) -> Option<(Class, Access)> {
        if uid == 0 {
            return Some((Class::Root, Access::Full));
        }
        if uid == self.daemon_uid {
            return Some((Class::DaemonUser, Access::Full));
        }
        let member =
            |g: &Option<ControlGroup>| g.as_ref().is_some_and(|g| gid == g.gid || g.member_uids.contains(&uid));
        if member(&self.group) {
            return Some((Class::Member, Access::Full));
        }
        member(&self.watch_group).then_some((Class::Member, Access::ReadOnly))
    }

    /// Why a read-only peer may not run a request that changes state, naming the missing group.
    fn read_only_refusal(&self, uid: u32) -> Reply {
        let how = match &self.group {
            Some(g) => format!("a member of control_group {:?}", g.name),
            None => "a control_group (none is configured)".to_string(),
        };
        let watch = self.watch_group.as_ref().map(|g| g.name.clone()).unwrap_or_default();
        Reply::err(format!(
            "permission denied: uid {uid} is in watch_group {watch:?}, which may only read (status, query, watch); \
             bringing links up or down and flushing the cache needs root, the daemon's user or {how}"
        ))
    }
}

impl ControlGroup {
    /// Looks the group `name` up, with its listed members' uids. `setting` names the config key.
    fn resolve(name: &str, setting: &str) -> anyhow::Result<Self> {
        let g = nix::unistd::Group::from_name(name)
            .with_context(|| format!("cannot look up {setting} {name:?}"))?
            .with_context(|| {
                format!("{setting} {name:?} does not exist: create it (groupadd) or remove the setting")
            })?;
        let mut member_uids = Vec::new();
        for member in &g.mem {
            match nix::unistd::User::from_name(member) {
                Ok(Some(user)) => member_uids.push(user.uid.as_raw()),
                _ => warn!(group = name, member, "{setting} lists a user that does not exist; ignored"),
            }
        }
        Ok(ControlGroup { name: name.to_string(), gid: g.gid.as_raw(), member_uids })
    }
}

/// The bound control socket.
pub(crate) struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the socket at `path` (mode 0660, group `group` if given). A stale socket file from a
    /// crashed daemon is replaced; a live one is an error.
    pub(crate) async fn bind(path: &Path, group_gid: Option<u32>) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the control socket's directory {}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                bail!(
                    "another splitdns daemon is already listening on {}; stop it first, or give this one \
                     another --control-socket",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale control socket {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("cannot create the control socket {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        if let Some(gid) = group_gid {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .with_context(|| format!("cannot give {} to the control group", path.display()))?;
        }
        Ok(Self { listener, path: path.to_path_buf() })
    }

    /// Serves connections until `shutdown` fires, then removes the socket file.
    pub(crate) async fn serve(self, api: Arc<dyn ControlApi>, policy: PeerPolicy, shutdown: CancellationToken) {
        let mut door = Door {
            shared: Arc::new(Shared {
                api,
                policy,
                admission: Admission::new(Limits::default()),
                watchers: std::sync::Mutex::new(std::collections::HashMap::new()),
            }),
            refusals: Throttle::default(),
            take_overs: Throttle::default(),
            tasks: tokio::task::JoinSet::new(),
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => door.accepted(stream),
                    Err(e) => pause_after(&e).await,
                },
                Some(_) = door.tasks.join_next(), if !door.tasks.is_empty() => {}
            }
        }
        door.tasks.abort_all();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// After a failed accept: out of descriptors or memory, the same connection would fail again at
/// once, so wait a little rather than spin.
async fn pause_after(e: &std::io::Error) {
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) {
        warn!(error = %e, "control socket: cannot accept a connection; pausing");
        tokio::time::sleep(ACCEPT_PAUSE).await;
    } else {
        debug!(error = %e, "control socket: accept failed");
    }
}

/// What the accept loop decides with: who may come in, and the slots.
struct Door {
    shared: Arc<Shared>,
    refusals: Throttle,
    take_overs: Throttle,
    tasks: tokio::task::JoinSet<()>,
}

impl Door {
    /// Checks a new connection's credentials and gives it a slot, or a last error line.
    fn accepted(&mut self, stream: UnixStream) {
        let accepted_at = Instant::now();
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "control socket: cannot read peer credentials; closing");
                return;
            }
        };
        let (uid, gid) = (cred.uid(), cred.gid());
        let access = self.shared.policy.access(uid, gid);
        let admitted = match access {
            None => Err(self.shared.policy.permission_denied(uid)),
            Some((class, access)) => {
                self.shared.admission.admit(uid, class).map(|a| (a, access)).map_err(|r| refusal_reply(&r))
            }
        };
        match admitted {
            Ok((admitted, access)) => {
                if let Some(waited) = admitted.took_over_after
                    && let Some(held_back) = self.take_overs.note()
                {
                    warn!(
                        uid,
                        ?waited,
                        held_back,
                        "control socket: all slots of this user in use; a new connection took over the one that \
                         had waited longest"
                    );
                }
                let conn = Connection::new(stream, admitted.slot, uid, accepted_at);
                let shared = self.shared.clone();
                self.tasks.spawn(async move { serve_connection(conn, access, &shared).await });
            }
            Err(reply) => {
                if let Some(held_back) = self.refusals.note() {
                    let reason = reply.error.as_deref().unwrap_or_default();
                    warn!(uid, gid, pid = ?cred.pid(), held_back, reason, "control socket: connection refused");
                }
                match self.shared.admission.closing() {
                    Some(closing) => {
                        self.tasks.spawn(farewell(stream, reply, closing));
                    }
                    None => write_at_once(stream, &reply),
                }
            }
        }
    }
}

/// Logs the first of a kind of event per [`LOG_EVERY`] and counts the others, so that a flood of
/// connections cannot flood the log.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// `Some(number held back since the last logged one)` when this one is to be logged.
    fn note(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.held_back))
    }
}

/// `5 s`, `1.5 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// What every connection's task shares: the daemon, who may do what, the slots, the watchers.
struct Shared {
    api: Arc<dyn ControlApi>,
    policy: PeerPolicy,
    admission: Arc<Admission>,
    /// Watch streams open per uid.
    watchers: std::sync::Mutex<std::collections::HashMap<u32, usize>>,
}

impl PeerPolicy {
    /// Why a peer may not use the socket at all, naming the groups that would let it.
    fn permission_denied(&self, uid: u32) -> Reply {
        let groups: Vec<String> = [("control_group", &self.group), ("watch_group", &self.watch_group)]
            .iter()
            .filter_map(|(key, g)| g.as_ref().map(|g| format!("{key} {:?}", g.name)))
            .collect();
        let groups = if groups.is_empty() {
            "no control_group or watch_group is configured".into()
        } else {
            groups.join(" or ")
        };
        Reply::err(format!(
            "permission denied: uid {uid} may not use splitdns's control socket; only root, the daemon's own user \
             and members of its groups may ({groups}). Run the command as root, or have an administrator add this \
             user to watch_group (read: status, query, watch) or control_group (everything) in the daemon's \
             config.toml and restart the daemon"
        ))
    }
}

fn refusal_reply(refusal: &Refusal) -> Reply {
    let closes =
        format!("the daemon closes any connection that sends no complete request within {}", secs(LINE_DEADLINE));
    Reply::err(match refusal {
        Refusal::AllExecuting { uid, max } => format!(
            "too many connections from uid {uid} (at most {max} at once, all executing requests): retry in a few \
             seconds"
        ),
        Refusal::PerUser { uid, max } => format!(
            "too many connections from uid {uid} (at most {max} at once per user): close the connections this user \
             left open, or retry in a few seconds; {closes}"
        ),
        Refusal::Members { max } => format!(
            "too many connections from control_group members (at most {max} at once, for all of them together): \
             retry in a few seconds; {closes}"
        ),
    })
}

fn too_large() -> Reply {
    Reply::err(format!("request too large: at most {MAX_REQUEST} bytes per line"))
}

/// One admitted connection: its stream, what has been read of it, and its slot.
struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
    eof: bool,
    slot: Slot,
    uid: u32,
    /// Since when it waits on its client: the accept, or the end of the previous reply.
    waiting_since: Instant,
    replied: bool,
}

/// What waiting for a request line brought.
enum Next {
    Line(Vec<u8>),
    /// The client closed, or the connection failed, with nothing left to answer.
    Closed,
    /// Close the connection after this last error line.
    Close(Reply),
}

impl Connection {
    fn new(stream: UnixStream, slot: Slot, uid: u32, accepted_at: Instant) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(1024),
            eof: false,
            slot,
            uid,
            waiting_since: accepted_at,
            replied: false,
        }
    }

    /// Waits for the next complete request line, until [`LINE_DEADLINE`] after the connection
    /// began to wait, however the bytes trickle in. A line already read is returned at once.
    async fn next_line(&mut self) -> Next {
        let deadline = tokio::time::Instant::from_std(self.waiting_since + LINE_DEADLINE);
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                if pos + 1 > MAX_REQUEST {
                    // A line that grew past the limit over several reads is as refused as one sent whole.
                    return Next::Close(too_large());
                }
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                return Next::Line(line);
            }
            if self.buf.len() >= MAX_REQUEST {
                return Next::Close(too_large());
            }
            if self.eof {
                // A final request without a newline is still answered.
                return if self.buf.is_empty() { Next::Closed } else { Next::Line(std::mem::take(&mut self.buf)) };
            }
            tokio::select! {
                biased;
                () = self.slot.taken_over() => return Next::Close(self.taken_over_reply()),
                () = tokio::time::sleep_until(deadline) => return Next::Close(self.late_reply()),
                read = self.stream.read(&mut chunk) => match read {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) => {
                        debug!(error = %e, "control socket read error");
                        return Next::Closed;
                    }
                },
            }
        }
    }

    /// Writes one reply line within [`WRITE_DEADLINE`]. Meanwhile the slot counts as waiting on
    /// the client: a reply left unread lets a newer connection take the slot over. False when the
    /// connection is to be closed (the client does not read, so no last line is sent).
    async fn reply(&mut self, reply: &Reply) -> bool {
        self.slot.waiting();
        let line = encode(reply);
        let written = tokio::select! {
            biased;
            // A write that completes at once wins even over a take-over: the request ran, so its
            // reply goes out.
            r = tokio::time::timeout(WRITE_DEADLINE, self.stream.write_all(&line)) => matches!(r, Ok(Ok(()))),
            () = self.slot.taken_over() => false,
        };
        self.replied = true;
        self.waiting_since = Instant::now();
        written
    }

    fn late_reply(&self) -> Reply {
        let d = secs(LINE_DEADLINE);
        Reply::err(if !self.buf.is_empty() {
            format!(
                "request incomplete after {d} ({} bytes and no newline): send the whole request and its newline at \
                 once; closing",
                self.buf.len()
            )
        } else if self.replied {
            format!("no further request within {d} of the last reply; closing (connect again for the next request)")
        } else {
            format!(
                "no request within {d} of connecting: send one JSON request per line, e.g. {{\"cmd\":\"status\"}}, \
                 right after connecting; closing"
            )
        })
    }

    fn taken_over_reply(&self) -> Reply {
        Reply::err(format!(
            "closed: this connection had waited {:.1} s on its client, and a newer connection of uid {} needed its \
             slot (at most {} at once): send each request right after connecting, and read its reply",
            self.waiting_since.elapsed().as_secs_f64(),
            self.uid,
            self.slot.max()
        ))
    }

    /// Frees the slot, then closes with a last error line.
    async fn close_with(self, reply: Reply, admission: &Arc<Admission>) {
        let Connection { stream, slot, .. } = self;
        drop(slot);
        match admission.closing() {
            Some(closing) => farewell(stream, reply, closing).await,
            None => write_at_once(stream, &reply),
        }
    }
}

/// Answers the requests of one admitted connection until it closes or must be closed.
async fn serve_connection(mut conn: Connection, access: Access, shared: &Arc<Shared>) {
    let admission = &shared.admission;
    loop {
        let line = match conn.next_line().await {
            Next::Line(line) => line,
            Next::Closed => return,
            Next::Close(reply) => return conn.close_with(reply, admission).await,
        };
        if !conn.slot.executing() {
            // Taken over just as its line arrived: the request must not run.
            let reply = conn.taken_over_reply();
            return conn.close_with(reply, admission).await;
        }
        let reply = match parse(&line) {
            Err(reply) => reply,
            Ok(request) if request.changes_state() && access == Access::ReadOnly => {
                shared.policy.read_only_refusal(conn.uid)
            }
            // The long-lived request takes the connection by value and leaves this loop, so no line
            // deadline applies to it any more.
            Ok(Request::Watch {}) => return watch(conn, shared).await,
            Ok(request) => execute(request, shared.api.as_ref(), conn.uid).await,
        };
        if !conn.reply(&reply).await {
            return;
        }
    }
}

/// Streams events to a `watch` subscriber until it closes, falls behind, or the daemon stops: the
/// replay first, then live events. A subscriber that does not read fills its (small) socket buffer,
/// falls behind the broadcast buffer and is cut off with an `overflow` line; nothing the daemon does
/// ever waits for it.
async fn watch(mut conn: Connection, shared: &Arc<Shared>) {
    let uid = conn.uid;
    let Some(_watching) = Watching::start(shared, uid) else {
        let reply = Reply::err(format!(
            "too many watch streams for uid {uid} (at most {MAX_WATCHERS_PER_UID}): close one first"
        ));
        return conn.close_with(reply, &shared.admission).await;
    };
    let _ = socket2::SockRef::from(&conn.stream).set_send_buffer_size(WATCH_SNDBUF);
    let sub = shared.api.subscribe();
    let mut live = sub.live;
    let mut ok = send_line(&mut conn.stream, encode(&Reply::ok("watching"))).await;
    for event in sub.replay {
        if !ok {
            break;
        }
        ok = send_line(&mut conn.stream, event_line(&event)).await;
    }
    let mut eof = [0u8; 64];
    while ok {
        tokio::select! {
            got = live.recv() => match got {
                Ok(event) => ok = send_line(&mut conn.stream, event_line(&event)).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let message = format!(
                        "this watcher fell behind by {missed} events (it did not read fast enough) and is \
                         disconnected; connect again to start over with a fresh replay"
                    );
                    let _ = send_line(&mut conn.stream, event_line(&EventKind::Overflow { message }.now())).await;
                    break;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            // The subscriber closed (or sent something: a watch connection takes no more requests).
            read = conn.stream.read(&mut eof) => if !matches!(read, Ok(n) if n > 0) { break },
        }
    }
}

/// One of a uid's watch streams ([`MAX_WATCHERS_PER_UID`] at most), given back when dropped,
/// however the stream ends (closed, cut off, or its task aborted).
struct Watching<'a> {
    shared: &'a Shared,
    uid: u32,
}

impl<'a> Watching<'a> {
    fn start(shared: &'a Shared, uid: u32) -> Option<Self> {
        let mut watchers = shared.watchers.lock().unwrap_or_else(|e| e.into_inner());
        let n = watchers.entry(uid).or_default();
        if *n >= MAX_WATCHERS_PER_UID {
            return None;
        }
        *n += 1;
        Some(Self { shared, uid })
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        let mut watchers = self.shared.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = watchers.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                watchers.remove(&self.uid);
            }
        }
    }
}

/// Writes one line within [`WRITE_DEADLINE`]; false when it could not.
async fn send_line(stream: &mut UnixStream, line: Vec<u8>) -> bool {
    matches!(tokio::time::timeout(WRITE_DEADLINE, stream.write_all(&line)).await, Ok(Ok(())))
}

fn event_line(event: &Event) -> Vec<u8> {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Sends a last error line and closes so that the client reads it, not EPIPE or ECONNRESET: after
/// the line the daemon shuts down its writing side and reads and discards what the client still
/// sends, until its end-of-file, for at most [`LINGER`] and [`MAX_REQUEST`] bytes. (Closing a Unix
/// socket with unread data resets it; closing it before the client has written makes the client's
/// write fail.) Holds a [`Closing`] permit, not a slot.
async fn farewell(mut stream: UnixStream, reply: Reply, closing: Closing) {
    let line = encode(&reply);
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(&line).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < MAX_REQUEST {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    drop(closing);
}

/// Writes a last line only if it fits at once, and closes: for when too many connections are
/// lingering already. The client in [`super::client`] still reads it.
fn write_at_once(stream: UnixStream, reply: &Reply) {
    if let Ok(stream) = stream.into_std() {
        let _ = std::io::Write::write(&mut &stream, &encode(reply));
    }
}

fn encode(reply: &Reply) -> Vec<u8> {
    let mut line = serde_json::to_vec(reply).unwrap_or_else(|_| br#"{"ok":false,"error":"internal"}"#.to_vec());
    line.push(b'\n');
    line
}

/// Parses one request line; a bad one yields its error reply.
fn parse(line: &[u8]) -> Result<Request, Reply> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::err("empty request: send one JSON object per line, e.g. {\"cmd\":\"status\"}"));
    }
    serde_json::from_slice(line).map_err(|e| Reply::err(format!("bad request: {e}")))
}

/// Executes one request that replies with one line.
async fn execute(request: Request, api: &dyn ControlApi, uid: u32) -> Reply {
    match request {
        Request::Status {} => Reply::ok(api.status()),
        // Served as a stream by `watch`; never reaches here.
        Request::Watch {} => Reply::err("watch is served as a stream"),
        Request::LinkUp { link } => {
            let id = link.id.clone();
            match api.link_up(link).await {
                Ok(r) => {
                    info!(uid, link = %id, "link up via control socket");
                    Reply::ok(r)
                }
                Err(e) => Reply::err(e),
            }
        }
        Request::LinkDown { id } => Reply::ok(api.link_down(&id)),
        Request::Query { name, qtype } => match api.query(&name, &qtype).await {
            Ok(r) => Reply::ok(r),
            Err(e) => Reply::err(e),
        },
        Request::Flush { domain } => {
            let r = api.flush(domain.as_ref());
            info!(uid, domain = ?r.domain, flushed = r.flushed, "cache flushed via control socket");
            Reply::ok(r)
        }
    }
}
