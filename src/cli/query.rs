//! `splitdns query NAME [TYPE]` and `splitdns flush [DOMAIN]`: ask the daemon how a name is answered
//! (which link, validated or not, from the cache or not), and drop cached answers.

use std::path::Path;

use crate::control::client::{DEFAULT_TIMEOUT, call};
use crate::control::protocol::{FlushResult, QueryResult, Request};
use crate::domain::DomainName;

pub(super) async fn query(socket: &Path, name: String, qtype: String, json: bool) -> anyhow::Result<()> {
    let r: QueryResult = call(socket, &Request::Query { name, qtype }, DEFAULT_TIMEOUT).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("{} {}: {}", r.name, r.qtype, r.rcode);
    for a in &r.answers {
        println!("  {a}");
    }
    let via = match &r.split_domain {
        Some(d) => format!("{} (split domain {d})", r.route),
        None => format!("{} (no split domain matches)", r.route),
    };
    println!("answered by  {via}");
    let dnssec = match &r.validated_zone {
        Some(z) => format!("{} (trust anchor for {z})", r.dnssec),
        None => format!("{} (no trust anchor covers this name)", r.dnssec),
    };
    println!("dnssec       {dnssec}");
    println!("from cache   {}", if r.cached { "yes" } else { "no" });
    if let Some(e) = &r.error {
        println!("error        {e}");
    }
    Ok(())
}

pub(super) async fn flush(socket: &Path, domain: Option<DomainName>) -> anyhow::Result<()> {
    let r: FlushResult = call(socket, &Request::Flush { domain }, DEFAULT_TIMEOUT).await?;
    match r.domain {
        Some(d) => println!("flushed {} cached answer(s) for {d} and below", r.flushed),
        None => println!("flushed {} cached answer(s)", r.flushed),
    }
    Ok(())
}
