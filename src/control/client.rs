//! The CLI and hook end of the control socket: send one request, read one reply, with a deadline so
//! that a hook never hangs its VPN client.
//!
//! The daemon may answer before it reads the request: a refusal (permission denied, too many
//! connections) is written as soon as the connection is accepted, and the daemon may close before
//! our request is written. Then writing fails with EPIPE or ECONNRESET, but the reason is waiting
//! to be read; so a failed write is not the end, the reply line is read all the same and its error
//! shown, rather than "Broken pipe".

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::events::Event;
use super::protocol::{Reply, Request};

/// Default deadline for one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before connecting again while the daemon's backlog of unaccepted connections is full.
const BACKLOG_RETRY: Duration = Duration::from_millis(20);

/// Sends `request` to the daemon at `socket` and decodes the result.
pub async fn call<T: DeserializeOwned>(socket: &Path, request: &Request, timeout: Duration) -> anyhow::Result<T> {
    let reply = tokio::time::timeout(timeout, exchange(socket, request))
        .await
        .with_context(|| format!("the splitdns daemon at {} did not answer within {timeout:?}", socket.display()))??;
    if !reply.ok {
        bail!("{}", reply.error.unwrap_or_else(|| "the daemon reported an unspecified error".into()));
    }
    let value = reply.result.unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value).context("the daemon's reply does not match this splitdns version")
}

/// True for the errors of writing to, or reading from, a connection the peer has closed.
fn closed_by_peer(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
}

async fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(stream),
            // The daemon has not yet accepted the connections before ours (a non-blocking connect
            // to a full backlog): try again; the caller's deadline (`call`, `watch`) bounds this.
            Err(e) if e.kind() == ErrorKind::WouldBlock => tokio::time::sleep(BACKLOG_RETRY).await,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => bail!("{}", permission_hint(socket)),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot connect to the splitdns daemon at {}: is it running? (start it with `splitdns \
                         daemon`, or point at its socket with --control-socket or SPLITDNS_SOCKET)",
                        socket.display()
                    )
                });
            }
        }
    }
}

/// Why this user may not reach the socket, and whom to ask: the file's group is the daemon's
/// `watch_group` (or `control_group`).
fn permission_hint(socket: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let group = std::fs::metadata(socket)
        .ok()
        .map(|m| m.gid())
        .and_then(|gid| nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten())
        .map(|g| format!("members of group {:?}", g.name))
        .unwrap_or_else(|| "members of the daemon's watch_group or control_group".into());
    format!(
        "permission denied: this user may not reach the splitdns control socket {} (only root, the daemon's user \
         and {group} may); ask an administrator to add you to the daemon's watch_group (to read: status, query, \
         watch) or control_group (everything), or run the command as root",
        socket.display()
    )
}

async fn exchange(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    Ok(open(socket, request).await?.0)
}

/// Connects, sends `request` and reads the first reply line; the connection stays open for what
/// follows it (the `watch` stream). Callers bound it with a deadline (see [`connect`]).
async fn open(socket: &Path, request: &Request) -> anyhow::Result<(Reply, BufReader<UnixStream>)> {
    let mut stream = connect(socket).await?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    let sent = match stream.write_all(&line).await {
        Ok(()) => Ok(()),
        // The daemon closed first; its reason may be waiting to be read.
        Err(e) if closed_by_peer(&e) => Err(e),
        Err(e) => return Err(e).context("cannot send the request to the splitdns daemon"),
    };
    let mut reader = BufReader::new(stream);
    let mut answer = Vec::new();
    let read = reader.read_until(b'\n', &mut answer).await;
    if answer.is_empty() {
        return match (sent, read) {
            (Err(e), _) => Err(e)
                .context("the splitdns daemon closed the connection before reading the request, and gave no reason"),
            (Ok(()), Err(e)) => Err(e).context("cannot read the splitdns daemon's reply"),
            (Ok(()), Ok(_)) => bail!("the splitdns daemon closed the connection without answering"),
        };
    }
    let reply = serde_json::from_slice(&answer).context("the daemon's reply is not valid JSON")?;
    Ok((reply, reader))
}

/// The event stream (`watch`): connects, asks for it, and calls `on_event` with each event until
/// the daemon closes the stream (it stops, or this subscriber fell behind: the last event is then
/// an `overflow`). `Err` when the daemon refuses or cannot be reached.
pub async fn watch(socket: &Path, mut on_event: impl FnMut(Event)) -> anyhow::Result<()> {
    let (reply, mut reader) = tokio::time::timeout(DEFAULT_TIMEOUT, open(socket, &Request::Watch {}))
        .await
        .context("the splitdns daemon did not answer the watch request")??;
    if !reply.ok {
        bail!("{}", reply.error.unwrap_or_else(|| "the daemon refused the watch request".into()));
    }
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(event) => on_event(event),
            // A newer daemon may send kinds this CLI does not know: skip them.
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A daemon that answers at once and closes without reading: the request, larger than the
    /// socket's buffer, cannot be written whole (EPIPE or ECONNRESET), yet the caller gets the
    /// daemon's message.
    #[tokio::test]
    async fn a_refusal_is_read_even_when_the_request_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let daemon = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"{\"ok\":false,\"error\":\"permission denied: uid 1 may not\"}\n").await.unwrap();
            // Let the client fill the buffer and block, then close with its request unread.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let request = Request::Query { name: "a".repeat(4 << 20), qtype: "A".into() };
        let err = call::<serde_json::Value>(&path, &request, DEFAULT_TIMEOUT).await.unwrap_err();
        daemon.await.unwrap();
        let err = format!("{err:#}");
        assert!(err.starts_with("permission denied: uid 1 may not"), "{err}");
    }

    #[tokio::test]
    async fn a_close_without_a_reply_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let daemon = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        });
        let request = Request::Query { name: "a".repeat(4 << 20), qtype: "A".into() };
        let err = call::<serde_json::Value>(&path, &request, DEFAULT_TIMEOUT).await.unwrap_err();
        daemon.await.unwrap();
        let err = format!("{err:#}");
        assert!(err.contains("closed the connection before reading the request"), "{err}");
    }
}
