//! The daemon end of the control socket.
//!
//! Each connection is checked with SO_PEERCRED before anything is read: root, the daemon's own user,
//! and members of the configured `control_group` may talk to it; others get one error line and are
//! disconnected. Requests are read one line at a time, at most [`MAX_REQUEST`] bytes; a malformed or
//! oversized request gets an error reply and changes nothing. Idle connections are closed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::protocol::{FlushResult, MAX_REQUEST, QueryResult, Reply, Request};
use crate::daemon::agent::Agent;
use crate::dns::handler::Handler;

const IDLE: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 32;
/// How long `link up` waits for the link's trust anchors to be verified before replying.
const SETTLE: Duration = Duration::from_secs(3);

/// Who may use the socket.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    pub daemon_uid: u32,
    /// The control group's id and member names.
    pub group: Option<(u32, Vec<String>)>,
}

impl PeerPolicy {
    /// Builds the policy for this process, resolving `group` by name.
    pub fn for_this_process(group: Option<&str>) -> anyhow::Result<Self> {
        let group = match group {
            None => None,
            Some(name) => {
                let g = nix::unistd::Group::from_name(name)
                    .with_context(|| format!("cannot look up control_group {name:?}"))?
                    .with_context(|| {
                        format!("control_group {name:?} does not exist: create it (groupadd) or remove the setting")
                    })?;
                Some((g.gid.as_raw(), g.mem))
            }
        };
        Ok(Self { daemon_uid: nix::unistd::geteuid().as_raw(), group })
    }

    /// True when a peer with these credentials may send requests.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.daemon_uid {
            return true;
        }
        let Some((group_gid, members)) = &self.group else {
            return false;
        };
        if gid == *group_gid {
            return true;
        }
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(user)) => members.contains(&user.name),
            _ => false,
        }
    }
}

/// The bound control socket.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the socket at `path` (mode 0660, group `group` if given). A stale socket file from a
    /// crashed daemon is replaced; a live one is an error.
    pub async fn bind(path: &Path, group_gid: Option<u32>) -> anyhow::Result<Self> {
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
    pub async fn serve(self, agent: Arc<Agent>, handler: Handler, policy: PeerPolicy, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        warn!("control socket: too many connections, refusing one");
                        continue;
                    };
                    let (agent, policy, handler) = (agent.clone(), policy.clone(), handler.clone());
                    tasks.spawn(async move {
                        serve_connection(stream, &agent, &handler, &policy).await;
                        drop(permit);
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.abort_all();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_connection(mut stream: UnixStream, agent: &Agent, handler: &Handler, policy: &PeerPolicy) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "control socket: cannot read peer credentials; closing");
            return;
        }
    };
    if !policy.allows(cred.uid(), cred.gid()) {
        warn!(uid = cred.uid(), gid = cred.gid(), pid = ?cred.pid(), "control socket: peer not allowed");
        let _ = write_reply(
            &mut stream,
            &Reply::err(format!(
                "permission denied: uid {} may not control splitdns (allowed: root, the daemon's user, \
                 and members of its control_group)",
                cred.uid()
            )),
        )
        .await;
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete line already buffered.
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            if pos + 1 > MAX_REQUEST {
                // A line that grew past the limit over several reads is as refused as one sent whole.
                let _ = write_reply(&mut stream, &too_large()).await;
                return;
            }
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let reply = handle_line(&line[..line.len() - 1], agent, handler, cred.uid()).await;
            if write_reply(&mut stream, &reply).await.is_err() {
                return;
            }
        }
        if buf.len() >= MAX_REQUEST {
            let _ = write_reply(&mut stream, &too_large()).await;
            return;
        }
        match tokio::time::timeout(IDLE, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => {
                // EOF or idle. A final request without a newline is still answered.
                if !buf.is_empty() && buf.len() < MAX_REQUEST {
                    let reply = handle_line(&buf, agent, handler, cred.uid()).await;
                    let _ = write_reply(&mut stream, &reply).await;
                }
                return;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => {
                debug!(error = %e, "control socket read error");
                return;
            }
        }
    }
}

/// Resolves like a client with DO set, and reports the path the answer took.
async fn query(handler: &Handler, name: &str, qtype: &str) -> Result<QueryResult, String> {
    use hickory_proto::op::{Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    use std::str::FromStr;
    let qname = Name::from_str(name).map_err(|e| format!("{name:?} is not a domain name: {e}"))?;
    let qname = if qname.is_fqdn() { qname } else { Name::from_str(&format!("{name}.")).map_err(|e| e.to_string())? };
    let rtype =
        RecordType::from_str(&qtype.to_ascii_uppercase()).map_err(|_| format!("{qtype:?} is not a record type"))?;
    let flags = crate::dns::upstream::QueryFlags { dnssec_ok: true, checking_disabled: false };
    let out = handler.resolve(&Query::query(qname.clone(), rtype), flags).await;
    let path = out.path.clone();
    let dnssec = if out.secure {
        "secure"
    } else if out.rcode == ResponseCode::ServFail && path.as_ref().is_some_and(|p| p.validated_zone.is_some()) {
        "bogus or unverifiable"
    } else {
        "insecure"
    };
    Ok(QueryResult {
        name: qname.to_string(),
        qtype: rtype.to_string(),
        rcode: out.rcode.to_string(),
        answers: out.answers.iter().filter(|r| r.record_type() != RecordType::RRSIG).map(ToString::to_string).collect(),
        route: path.as_ref().map(|p| p.route.clone()).unwrap_or_else(|| "none".into()),
        split_domain: path.as_ref().and_then(|p| p.split_domain.clone()),
        dnssec: dnssec.into(),
        validated_zone: path.as_ref().and_then(|p| p.validated_zone.clone()),
        cached: path.as_ref().is_some_and(|p| p.cached),
        error: out.ede.map(|(code, text)| format!("EDE {code}: {text}")),
    })
}

fn too_large() -> Reply {
    Reply::err(format!("request too large: at most {MAX_REQUEST} bytes per line"))
}

async fn handle_line(line: &[u8], agent: &Agent, handler: &Handler, uid: u32) -> Reply {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Reply::err("empty request: send one JSON object per line, e.g. {\"cmd\":\"status\"}");
    }
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return Reply::err(format!("bad request: {e}")),
    };
    match request {
        Request::Status {} => Reply::ok(agent.status()),
        Request::LinkUp { link } => {
            let id = link.id.clone();
            match agent.link_up_settled(link, SETTLE).await {
                Ok(r) => {
                    info!(uid, link = %id, "link up via control socket");
                    Reply::ok(r)
                }
                Err(e) => Reply::err(e.to_string()),
            }
        }
        Request::LinkDown { id } => Reply::ok(agent.link_down(&id)),
        Request::Query { name, qtype } => match query(handler, &name, &qtype).await {
            Ok(r) => Reply::ok(r),
            Err(e) => Reply::err(e),
        },
        Request::Flush { domain } => {
            let flushed = handler.flush(domain.as_ref());
            info!(uid, domain = ?domain.as_ref().map(ToString::to_string), flushed, "cache flushed via control socket");
            Reply::ok(FlushResult { domain: domain.map(|d| d.to_string()), flushed })
        }
    }
}

async fn write_reply(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).unwrap_or_else(|_| br#"{"ok":false,"error":"internal"}"#.to_vec());
    line.push(b'\n');
    stream.write_all(&line).await
}
