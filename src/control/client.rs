//! The CLI and hook end of the control socket: send one request, read one reply, with a deadline so
//! that a hook never hangs its VPN client.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Reply, Request};

/// Default deadline for one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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

async fn exchange(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    let mut stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot connect to the splitdns daemon at {}: is it running? (start it with `splitdns daemon`, \
             or point at its socket with --control-socket or SPLITDNS_SOCKET)",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).await?;
    if answer.is_empty() {
        bail!("the splitdns daemon closed the connection without answering");
    }
    serde_json::from_str(&answer).context("the daemon's reply is not valid JSON")
}
