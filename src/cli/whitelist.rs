//! `splitdns whitelist list|add|remove`: a person approves or withdraws the domains whose
//! VPN-supplied DNSSEC trust anchors may be used (RFC 8598 §6).
//!
//! `add` and `remove` ask on the terminal (default No) and refuse to run when standard input is not a
//! terminal: no flag turns the question off. A provisioning system writes the file itself.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::config;
use crate::domain::DomainName;
use crate::trust::whitelist::{self, AddOutcome, OVERRIDE_MARKER, Whitelist, WhitelistError};

#[derive(Args, Debug)]
pub(super) struct WhitelistArgs {
    /// The whitelist file [default: /etc/splitdns/whitelist as root, ~/.config/splitdns/whitelist otherwise]
    #[arg(long = "whitelist", global = true, env = "SPLITDNS_WHITELIST", value_name = "PATH")]
    path: Option<PathBuf>,

    #[command(subcommand)]
    command: WhitelistCommand,
}

#[derive(Subcommand, Debug)]
enum WhitelistCommand {
    /// Show the whitelisted domains, and the lines that are ignored and why.
    List,
    /// Approve a domain: trust anchors a VPN offers for it may vouch for it and every name under it.
    /// Asks first; needs a terminal.
    Add {
        /// The domain, e.g. corp.example (covers its subdomains).
        domain: String,
        /// Allow a top-level domain or public suffix (com, co.uk, github.io, internal, …). Rarely right:
        /// names under it belong to many owners.
        #[arg(long)]
        override_public_suffix: bool,
        /// Approve only the anchors this VPN profile offers (`DOMAIN profile=NAME`): approving a
        /// domain for one VPN does not approve another VPN's key for names under it.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
    },
    /// Withdraw a domain's approval. Asks first; needs a terminal.
    Remove {
        /// The domain, as it appears in the whitelist.
        domain: String,
    },
    /// Go through the trust anchors VPNs offered for domains that are not whitelisted, and approve
    /// or skip each. Asks the running daemon what is pending and edits the whitelist it uses.
    /// Needs a terminal.
    Review,
}

/// Runs `splitdns whitelist …`.
pub(super) async fn run(args: WhitelistArgs, socket: &Path) -> anyhow::Result<()> {
    if let WhitelistCommand::Review = args.command {
        return review(args.path, socket).await;
    }
    let path = args.path.unwrap_or_else(|| config::default_paths().whitelist);
    match args.command {
        WhitelistCommand::Review => Ok(()),
        WhitelistCommand::List => list(&path),
        WhitelistCommand::Add { domain, override_public_suffix, profile } => {
            add(&path, &domain, override_public_suffix, profile.as_deref())
        }
        WhitelistCommand::Remove { domain } => remove(&path, &domain),
    }
}

/// Fails unless standard input is a terminal, so that only a person can approve (or withdraw) a
/// domain. `command` is what to run interactively instead.
pub(super) fn require_terminal(path: &Path, command: &str) -> anyhow::Result<()> {
    if io::stdin().is_terminal() {
        return Ok(());
    }
    bail!(
        "nothing changed: standard input is not a terminal. Only a person at a terminal may change the \
         trust-anchor whitelist: run `{command}` in a terminal and answer its question. (A provisioning \
         system writes {} itself, one domain per line.)",
        path.display()
    )
}

/// Asks `question` on the terminal and reads the answer: true only for `y` or `yes` (any case);
/// Enter, anything else and end of input mean no. Call [`require_terminal`] first.
pub(super) fn confirm(question: &str) -> bool {
    let mut err = io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    match io::stdin().lock().read_line(&mut answer) {
        Ok(0) | Err(_) => {
            eprintln!();
            false
        }
        Ok(_) => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
    }
}

/// Adds what to do to an error from an edit.
fn explain(e: WhitelistError) -> anyhow::Error {
    let hint = match &e {
        WhitelistError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
            " (the whitelist can be changed only by its owner: for the system daemon's, run this with sudo)"
        }
        WhitelistError::Syntax { .. } => " (fix that line with an editor first; nothing changed)",
        WhitelistError::TooBig { .. } | WhitelistError::TooManyLines { .. } => " (nothing changed)",
        _ => "",
    };
    anyhow::anyhow!("{e}{hint}")
}

/// Warns when the daemon would refuse the file (see [`whitelist::check_permissions`]), assuming it
/// runs as this user or as root.
fn warn_about_permissions(path: &Path) {
    if let Err(e) = whitelist::check_permissions(path, nix::unistd::geteuid().as_raw()) {
        eprintln!("warning: {e}");
    }
}

fn list(path: &Path) -> anyhow::Result<()> {
    let parsed = Whitelist::load(path).map_err(explain)?;
    for w in &parsed.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    warn_about_permissions(path);
    if parsed.list.is_empty() {
        let why = if path.exists() { "no usable entry" } else { "the file does not exist" };
        eprintln!("{}: {why}, so no trust anchor a VPN offers is used.", path.display());
        return Ok(());
    }
    let n = parsed.list.entries().len();
    eprintln!(
        "{}: {n} domain{}; a VPN's trust anchors are used for these and the names under them:",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    for e in parsed.list.entries() {
        if e.public_suffix_override {
            println!("{}  {OVERRIDE_MARKER}", e.domain);
        } else {
            println!("{}", e.domain);
        }
    }
    Ok(())
}

fn add(path: &Path, domain: &str, override_public_suffix: bool, profile: Option<&str>) -> anyhow::Result<()> {
    let name = whitelist::check_new_entry(domain, override_public_suffix).map_err(explain)?;
    let mut flag = if override_public_suffix { " --override-public-suffix".to_string() } else { String::new() };
    if let Some(p) = profile {
        flag.push_str(&format!(" --profile {p:?}"));
    }
    require_terminal(path, &format!("splitdns whitelist add {name}{flag}"))?;
    let current = Whitelist::load(path).map_err(explain)?;
    if let Some(by) = current.list.already_approves(&name, profile) {
        println!("{name} is already covered by the entry {by} in {}: nothing changed.", path.display());
        return Ok(());
    }
    eprintln!("{}", add_explanation(&name, path));
    let whom = profile.map(|p| format!(" for VPN profile {p:?}")).unwrap_or_default();
    if !confirm(&format!("Whitelist {name}{whom}?")) {
        bail!("nothing changed: {name} was not approved");
    }
    match whitelist::add_for(path, name.as_str(), override_public_suffix, profile).map_err(explain)? {
        AddOutcome::Added { domain, subsumes } => {
            println!("Added {domain} to {}.", path.display());
            if !subsumes.is_empty() {
                let list: Vec<&str> = subsumes.iter().map(DomainName::as_str).collect();
                println!("It also covers the existing entries {}; you may remove them.", list.join(", "));
            }
        }
        AddOutcome::AlreadyCovered { domain, by } => {
            println!("{domain} is already covered by the entry {by} in {}: nothing changed.", path.display());
        }
    }
    warn_about_permissions(path);
    Ok(())
}

/// What approving `name` means, shown before the question.
fn add_explanation(name: &DomainName, path: &Path) -> String {
    let mut text = format!(
        "\
Approve DNSSEC trust anchors for: {name}
  and every name under it:        www.{name}, a.b.{name}, …
Whitelist file:                   {path}

If you approve, a VPN that routes this domain may supply a DNSSEC trust anchor (a DS record) for
it, and splitdns will accept every answer that anchor vouches for, for the domain and every name
under it. That includes records other programs rely on for security, such as TLSA (which TLS
certificate to accept) and SSHFP (which SSH host key to accept). It is like trusting an enterprise
CA: approve only a domain that belongs to the organisation running the VPN.
",
        path = path.display()
    );
    if whitelist::is_public_suffix(name) {
        text.push_str(&format!(
            "
WARNING: {name} is a top-level domain or public suffix: names under it belong to many unrelated
owners, and the VPN could vouch for all of them. You asked to override that check.
"
        ));
    }
    text
}

fn remove(path: &Path, domain: &str) -> anyhow::Result<()> {
    let name = whitelist::parse_name(domain).map_err(explain)?;
    require_terminal(path, &format!("splitdns whitelist remove {name}"))?;
    let current = Whitelist::load(path).map_err(explain)?;
    if !current.list.entries().iter().any(|e| e.domain == name) {
        let covered = match current.list.covers(&name) {
            Some(by) => format!(" (it is covered by the entry {by}: remove that to stop trusting anchors for it)"),
            None => String::new(),
        };
        bail!("nothing changed: {name} is not an entry of {}{covered}", path.display());
    }
    eprintln!(
        "\
Withdraw the approval of: {name}
Whitelist file:           {}

Trust anchors a VPN offers for this domain will no longer be used for it or the names under it
(unless another entry covers them). The line naming it is removed; every other line is kept.
",
        path.display()
    );
    if !confirm(&format!("Remove {name} from the whitelist?")) {
        bail!("nothing changed: the removal of {name} was not confirmed");
    }
    if !whitelist::remove(path, name.as_str()).map_err(explain)? {
        bail!("nothing changed: {name} is no longer in {}", path.display());
    }
    println!("Removed {name} from {}.", path.display());
    let after = Whitelist::load(path).map_err(explain)?;
    if let Some(by) = after.list.covers(&name) {
        println!("Note: {name} is still covered by the entry {by}.");
    }
    Ok(())
}

/// `whitelist review`: each pending anchor, explained, approved only on an explicit yes.
async fn review(path: Option<PathBuf>, socket: &Path) -> anyhow::Result<()> {
    use crate::control::client::{DEFAULT_TIMEOUT, call};
    use crate::control::protocol::{Request, Status};
    let status: Status = call(socket, &Request::Status {}, DEFAULT_TIMEOUT).await?;
    // Edit the file the daemon reads, unless told otherwise.
    let path = path.unwrap_or_else(|| PathBuf::from(&status.whitelist.path));
    if status.pending_reviews.is_empty() {
        println!("nothing to review: no VPN has offered a trust anchor for a domain outside {}", path.display());
        return Ok(());
    }
    require_terminal(&path, "splitdns whitelist review")?;
    let mut approved = 0;
    let mut seen = Vec::new();
    for p in &status.pending_reviews {
        if seen.contains(&p.domain) {
            continue;
        }
        seen.push(p.domain.clone());
        let profile = p.profile.as_deref().map(|x| format!(", profile {x:?}")).unwrap_or_default();
        let who = match &p.profile {
            Some(x) => format!("this VPN profile ({x:?}) — and no other —"),
            None => "this VPN (and any other that offers an anchor for it)".to_string(),
        };
        let public = p.domain.parse::<DomainName>().is_ok_and(|d| whitelist::is_public_suffix(&d));
        let suffix = match public {
            true => format!(
                "{} IS A PUBLIC SUFFIX or top-level domain: names under it belong to many unrelated owners. Review \
                 does not approve it; if this VPN really owns it, run `splitdns whitelist add {} \
                 --override-public-suffix`.",
                p.domain, p.domain
            ),
            false => format!("{} is not a public suffix.", p.domain),
        };
        let question = format!(
            "The VPN link {:?}{profile} offers a DNSSEC trust anchor for {} (since {}):\n    {}\n\
             Why it waits: {}\n{suffix}\n\
             What approving means: every name under {} — addresses, TLSA, SSHFP and all other DNSSEC-protected \
             data — will be validated with {who}'s key, like installing an enterprise certificate authority for \
             that domain: a secure answer then means \"as this VPN says\". The line goes into the whitelist {}.\n\
             Approve {}?",
            p.link,
            p.domain,
            crate::clock::utc(p.since),
            p.ds,
            p.reason,
            p.domain,
            path.display(),
            p.domain
        );
        if public {
            eprintln!("{question}\n(skipped: public suffix)");
            continue;
        }
        if !confirm(&question) {
            println!("skipped {} (still pending)", p.domain);
            continue;
        }
        // Bound to the offering profile: approving it for this VPN approves no other VPN's key.
        match whitelist::add_for(&path, &p.domain, false, p.profile.as_deref()) {
            Ok(AddOutcome::Added { domain, .. }) => {
                approved += 1;
                println!("approved {domain}: the daemon picks the change up at once");
            }
            Ok(AddOutcome::AlreadyCovered { domain, by }) => println!("{domain} is already covered by {by}"),
            Err(e) => eprintln!("could not approve {}: {e}", p.domain),
        }
    }
    if approved == 0 {
        bail!("nothing changed");
    }
    Ok(())
}
