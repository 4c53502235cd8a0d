//! What `splitdns notify` tells a person, apart from D-Bus so that it is tested without a bus:
//! which events need a person ([`Plan::next`]), the key that makes each of them one notification
//! however often the stream repeats it ([`Need::key`]), the words ([`render`]) and the command
//! lines that open the review ([`review_argv`], [`terminal_argv`]).
//!
//! The daemon replays what still needs a person every time a watcher connects, and the notifier
//! reconnects whenever the daemon restarts: without keys, every restart would notify again. A key
//! names the thing itself — its kind, the VPN (its profile, or its link id when it has none), the
//! domain and, for an anchor, the DS — never the connection or the time. So a VPN that reconnects
//! under a new link id, or a daemon restart, notifies nothing new, while a new anchor does. Keys
//! are remembered for the life of the process, with one exception: once the system points at the
//! agent again, its next drift away is news and notifies again.

use std::collections::HashSet;
use std::path::Path;

use crate::control::events::EventKind;
use crate::state::RefusalKind;

/// The action key of the "Review…" button.
pub(super) const REVIEW_ACTION: &str = "review";

/// Terminals tried in order when none is configured: the words that make each run the command
/// appended to them. Debian policy requires `x-terminal-emulator -e COMMAND ARGS…`;
/// `xdg-terminal-exec` is the freedesktop proposal; the rest are the common desktops' own.
pub(super) const TERMINALS: &[&str] = &[
    "x-terminal-emulator -e",
    "xdg-terminal-exec",
    "gnome-terminal --",
    "konsole -e",
    "xfce4-terminal -x",
    "kitty",
    "foot",
    "alacritty -e",
    "xterm -e",
];

/// Keeps the terminal open once the review is over, so that its last words can be read.
const HOLD: &str = "\"$@\"; s=$?; printf '\\n%s' 'Press Enter to close this window. '; read -r _; exit $s";

/// The VPN an event is about: its profile when it has one (stable across reconnects), else its
/// link id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Vpn {
    pub link: String,
    pub profile: Option<String>,
}

impl Vpn {
    fn new(link: &str, profile: &Option<String>) -> Vpn {
        Vpn { link: link.to_string(), profile: profile.clone() }
    }

    fn key(&self) -> String {
        match &self.profile {
            Some(p) => format!("profile={p}"),
            None => format!("link={}", self.link),
        }
    }
}

impl std::fmt::Display for Vpn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.profile {
            Some(p) => write!(f, "VPN profile `{p}`"),
            None => write!(f, "VPN link `{}`", self.link),
        }
    }
}

/// Something that needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Need {
    /// A VPN offers a trust anchor for a domain nobody approved for it.
    Review { vpn: Vpn, domain: String, ds: String, reason: String },
    /// An approved anchor's keys could not be verified: names under the domain fail closed.
    AnchorFailed { vpn: Vpn, domain: String, reason: String },
    /// A split domain the VPN asked for is not routed to it (another VPN owns it, or it is a
    /// public suffix).
    Refused { vpn: Vpn, domain: String, refusal: RefusalKind, reason: String },
    /// The system's resolver no longer points at the agent.
    SystemDns { mode: String, warnings: Vec<String> },
}

/// Case and a final dot do not make another domain.
fn norm(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

impl Need {
    /// What makes two notifications the same thing (see the module docs).
    pub(super) fn key(&self) -> String {
        match self {
            Need::Review { vpn, domain, ds, .. } => {
                let ds = ds.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
                format!("anchor-pending-review\0{}\0{}\0{ds}", vpn.key(), norm(domain))
            }
            Need::AnchorFailed { vpn, domain, .. } => format!("anchor-failed\0{}\0{}", vpn.key(), norm(domain)),
            Need::Refused { vpn, domain, refusal, .. } => {
                format!("domain-refused\0{}\0{}\0{refusal:?}", vpn.key(), norm(domain))
            }
            Need::SystemDns { .. } => SYSTEM_DNS_KEY.to_string(),
        }
    }

    /// Whether its notification offers the review.
    pub(super) fn is_review(&self) -> bool {
        matches!(self, Need::Review { .. })
    }
}

const SYSTEM_DNS_KEY: &str = "system-dns";

/// The need in an event, if any, before deduplication.
fn need(what: &EventKind) -> Option<Need> {
    Some(match what {
        EventKind::AnchorPendingReview(p) => Need::Review {
            vpn: Vpn::new(&p.link, &p.profile),
            domain: p.domain.clone(),
            ds: p.ds.clone(),
            reason: p.reason.clone(),
        },
        EventKind::AnchorFailed { link, profile, domain, reason } => {
            Need::AnchorFailed { vpn: Vpn::new(link, profile), domain: domain.clone(), reason: reason.clone() }
        }
        // A full-tunnel link ignores split domains by design (RFC 8598 §2): nothing to do.
        EventKind::DomainRefused { refusal: RefusalKind::FullTunnel, .. } => return None,
        EventKind::DomainRefused { link, profile, domain, refusal, reason } => Need::Refused {
            vpn: Vpn::new(link, profile),
            domain: domain.clone(),
            refusal: *refusal,
            reason: reason.clone(),
        },
        EventKind::SystemDns { mode, points_at_agent: false, warnings } => {
            Need::SystemDns { mode: mode.clone(), warnings: warnings.clone() }
        }
        _ => return None,
    })
}

/// What has been notified: decides, event by event, what to notify next.
#[derive(Debug, Default)]
pub(super) struct Plan {
    seen: HashSet<String>,
}

impl Plan {
    /// Whether `what` may change the plan (the stream reader passes on only these).
    pub(super) fn matters(what: &EventKind) -> bool {
        matches!(what, EventKind::SystemDns { .. }) || need(what).is_some()
    }

    /// The need `what` brings, unless it was notified already (it is remembered from now on).
    pub(super) fn next(&mut self, what: &EventKind) -> Option<Need> {
        if let EventKind::SystemDns { points_at_agent: true, .. } = what {
            self.seen.remove(SYSTEM_DNS_KEY);
            return None;
        }
        let need = need(what)?;
        self.seen.insert(need.key()).then_some(need)
    }
}

/// How urgent a notification is (the freedesktop `urgency` hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Urgency {
    Normal = 1,
    Critical = 2,
}

/// How the person starts the review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Review {
    /// With the notification's "Review…" button.
    Button,
    /// By typing this command in a terminal (no terminal program, or no buttons on this desktop).
    Command(String),
}

/// What the notification server can show, and how the review is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Style {
    pub review: Review,
    /// The server reads the body as markup (`body-markup`): `&`, `<`, `>` must be escaped.
    pub markup: bool,
}

/// One notification's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Texts {
    pub summary: String,
    pub body: String,
    pub icon: &'static str,
    pub urgency: Urgency,
    /// Offer the "Review…" button.
    pub review_button: bool,
}

/// The notification for `need`.
pub(super) fn render(need: &Need, style: &Style) -> Texts {
    let (summary, body, icon, urgency) = match need {
        Need::Review { vpn, domain, reason, .. } => {
            let mut body = format!(
                "{vpn} offers a DNSSEC trust anchor for {domain} — review it. Until you approve it, answers under \
                 {domain} are not validated ({reason})."
            );
            if let Review::Command(cmd) = &style.review {
                body.push_str(&format!(" Run `{cmd}` in a terminal."));
            }
            (format!("Review a trust anchor for {domain}"), body, "dialog-question", Urgency::Normal)
        }
        Need::AnchorFailed { vpn, domain, reason } => (
            format!("DNSSEC failed for {domain}"),
            format!(
                "The approved trust anchor that {vpn} offers for {domain} could not be verified: {reason}. Names \
                 under {domain} fail until it is. Details: `splitdns status`."
            ),
            "dialog-error",
            Urgency::Critical,
        ),
        Need::Refused { vpn, domain, refusal, reason } => {
            let why = match refusal {
                RefusalKind::PublicSuffix => "it is a public suffix, which no VPN may capture",
                _ => "another VPN owns it",
            };
            (
                format!("{domain} is not routed to the VPN"),
                format!(
                    "{vpn} asked for {domain}, but {why}: {reason}. Names under {domain} do not go to this VPN. \
                     Details: `splitdns status`."
                ),
                "dialog-warning",
                Urgency::Normal,
            )
        }
        Need::SystemDns { mode, warnings } => {
            let mut body = format!(
                "The system's resolver ({mode}) no longer points at splitdns: programs bypass it, and names under \
                 the VPNs' split domains may leak to another resolver."
            );
            if !warnings.is_empty() {
                body.push_str(&format!(" {}.", warnings.join("; ").trim_end_matches('.')));
            }
            body.push_str(" Run `splitdns system-dns status`, then `sudo splitdns system-dns enable`.");
            ("The system no longer uses splitdns".to_string(), body, "dialog-error", Urgency::Critical)
        }
    };
    Texts {
        summary,
        body: if style.markup { escape(&body) } else { body },
        icon,
        urgency,
        review_button: need.is_review() && style.review == Review::Button,
    }
}

/// The body with markup's three special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `[sudo] EXE --control-socket SOCKET whitelist review`: the review of the daemon at `socket`,
/// with sudo when this user may not write its whitelist.
pub(super) fn review_argv(exe: &str, socket: &Path, sudo: bool) -> Vec<String> {
    let mut argv = Vec::new();
    if sudo {
        argv.push("sudo".to_string());
    }
    argv.extend([exe.to_string(), "--control-socket".into(), socket.display().to_string()]);
    argv.extend(["whitelist".to_string(), "review".to_string()]);
    argv
}

/// The review command as a person types it: `--control-socket` only when it is not the default.
pub(super) fn review_words(socket: &Path, default_socket: &Path, sudo: bool) -> String {
    let sudo = if sudo { "sudo " } else { "" };
    if socket == default_socket {
        format!("{sudo}splitdns whitelist review")
    } else {
        format!("{sudo}splitdns --control-socket {} whitelist review", socket.display())
    }
}

/// The terminal's words, then a shell that runs `review` and waits for Enter before the window
/// closes. The review's words are the shell's arguments, never part of its script.
pub(super) fn terminal_argv(terminal: &[String], review: &[String]) -> Vec<String> {
    let mut argv = terminal.to_vec();
    argv.extend(["sh".to_string(), "-c".into(), HOLD.into(), "splitdns-review".into()]);
    argv.extend(review.iter().cloned());
    argv
}

/// `--terminal`'s value as words; none for an empty value or `none`.
pub(super) fn terminal_words(value: &str) -> Option<Vec<String>> {
    let words: Vec<String> = value.split_whitespace().map(str::to_string).collect();
    (!words.is_empty() && words != ["none"]).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::PendingReview;

    fn pending(link: &str, profile: Option<&str>, domain: &str, ds: &str) -> EventKind {
        EventKind::AnchorPendingReview(PendingReview {
            link: link.into(),
            profile: profile.map(str::to_string),
            domain: domain.into(),
            ds: ds.into(),
            since: 1,
            reason: "not on the whitelist".into(),
        })
    }

    fn refused(link: &str, domain: &str, refusal: RefusalKind) -> EventKind {
        EventKind::DomainRefused {
            link: link.into(),
            profile: None,
            domain: domain.into(),
            refusal,
            reason: "owned by link corp".into(),
        }
    }

    fn system_dns(points_at_agent: bool) -> EventKind {
        EventKind::SystemDns { mode: "resolv.conf".into(), points_at_agent, warnings: vec!["rewritten".into()] }
    }

    const DS: &str = "corp.example. IN DS 5051 13 2 ABCD";

    #[test]
    fn a_pending_anchor_is_notified_once_across_replays_and_reconnects() {
        let mut plan = Plan::default();
        assert!(plan.next(&pending("vpn0", Some("corp"), "corp.example", DS)).is_some());
        // The replay after a reconnect, or the daemon's restart.
        assert_eq!(plan.next(&pending("vpn0", Some("corp"), "corp.example", DS)), None);
        // The same VPN profile reconnected under another link id; case, dots, spacing differ.
        assert_eq!(
            plan.next(&pending("vpn7", Some("corp"), "Corp.Example.", "corp.example.  IN DS 5051 13 2 abcd")),
            None
        );
        // A new anchor: another key, another domain, another profile, a link without a profile.
        assert!(plan.next(&pending("vpn0", Some("corp"), "corp.example", "corp.example. IN DS 1 13 2 EF")).is_some());
        assert!(plan.next(&pending("vpn0", Some("corp"), "lab.example", DS)).is_some());
        assert!(plan.next(&pending("vpn0", Some("other"), "corp.example", DS)).is_some());
        assert!(plan.next(&pending("vpn0", None, "corp.example", DS)).is_some());
        assert_eq!(plan.next(&pending("vpn0", None, "corp.example", DS)), None);
        // A link id that happens to equal a profile name is another VPN.
        assert!(plan.next(&pending("corp", None, "corp.example", DS)).is_some());
    }

    #[test]
    fn only_what_needs_a_person_is_notified() {
        let mut plan = Plan::default();
        let quiet = [
            EventKind::AnchorOffered { link: "a".into(), profile: None, domain: "corp.example".into(), ds: DS.into() },
            EventKind::AnchorInUse { link: "a".into(), profile: None, domain: "corp.example".into(), keys: vec![] },
            EventKind::AnchorRevoked { link: "a".into(), profile: None, domain: "c.example".into(), reason: "".into() },
            EventKind::ReplayDone,
            EventKind::CacheFlushed { domain: None, flushed: 1 },
            refused("a", "corp.example", RefusalKind::FullTunnel),
            system_dns(true),
        ];
        for e in &quiet {
            assert_eq!(plan.next(e), None, "{e:?}");
            assert!(!Plan::matters(e) || matches!(e, EventKind::SystemDns { .. }), "{e:?}");
        }
        let failed = EventKind::AnchorFailed {
            link: "bad".into(),
            profile: None,
            domain: "bad.example".into(),
            reason: "no DNSKEY".into(),
        };
        let loud = [failed, refused("a", "corp.example", RefusalKind::Conflict), system_dns(false)];
        for e in &loud {
            assert!(Plan::matters(e), "{e:?}");
            assert!(plan.next(e).is_some(), "{e:?}");
            assert_eq!(plan.next(e), None, "{e:?} twice");
        }
        // The same domain refused for another reason is another thing.
        assert!(plan.next(&refused("a", "corp.example", RefusalKind::PublicSuffix)).is_some());
    }

    #[test]
    fn a_new_drift_of_the_system_resolver_notifies_again() {
        let mut plan = Plan::default();
        assert!(plan.next(&system_dns(false)).is_some());
        assert_eq!(plan.next(&system_dns(false)), None);
        assert_eq!(plan.next(&system_dns(true)), None);
        assert!(plan.next(&system_dns(false)).is_some());
    }

    fn review_need(profile: Option<&str>) -> Need {
        need(&pending("vpn0", profile, "corp.example", DS)).unwrap()
    }

    #[test]
    fn the_review_text_names_the_vpn_and_offers_the_button_or_the_command() {
        let button = Style { review: Review::Button, markup: false };
        let t = render(&review_need(Some("corp")), &button);
        assert!(
            t.body.starts_with("VPN profile `corp` offers a DNSSEC trust anchor for corp.example — review it."),
            "{}",
            t.body
        );
        assert!(t.review_button && !t.body.contains("Run `"), "{t:?}");
        let t = render(&review_need(None), &button);
        assert!(t.body.starts_with("VPN link `vpn0` offers"), "{}", t.body);
        let typed = Style { review: Review::Command("sudo splitdns whitelist review".into()), markup: false };
        let t = render(&review_need(Some("corp")), &typed);
        assert!(!t.review_button, "{t:?}");
        assert!(t.body.ends_with("Run `sudo splitdns whitelist review` in a terminal."), "{}", t.body);
        // Only a review has the button.
        let failed = need(&EventKind::AnchorFailed {
            link: "a".into(),
            profile: None,
            domain: "bad.example".into(),
            reason: "x".into(),
        })
        .unwrap();
        let t = render(&failed, &button);
        assert!(!t.review_button && t.urgency == Urgency::Critical, "{t:?}");
    }

    #[test]
    fn markup_is_escaped_only_for_a_server_that_reads_it() {
        let n = need(&EventKind::AnchorFailed {
            link: "a".into(),
            profile: Some("R&D <lab>".into()),
            domain: "bad.example".into(),
            reason: "x".into(),
        })
        .unwrap();
        let t = render(&n, &Style { review: Review::Button, markup: true });
        assert!(t.body.contains("`R&amp;D &lt;lab&gt;`"), "{}", t.body);
        assert!(t.summary == "DNSSEC failed for bad.example");
        let t = render(&n, &Style { review: Review::Button, markup: false });
        assert!(t.body.contains("`R&D <lab>`"), "{}", t.body);
    }

    #[test]
    fn the_review_runs_in_a_shell_that_waits_and_takes_its_words_as_arguments() {
        let socket = Path::new("/run/splitdns/control.sock");
        let review = review_argv("/usr/bin/splitdns", socket, true);
        assert_eq!(
            review,
            ["sudo", "/usr/bin/splitdns", "--control-socket", "/run/splitdns/control.sock", "whitelist", "review"]
        );
        let terminal = terminal_words(" x-terminal-emulator  -e ").unwrap();
        let argv = terminal_argv(&terminal, &review);
        assert_eq!(&argv[..4], ["x-terminal-emulator", "-e", "sh", "-c"]);
        assert_eq!(argv[5], "splitdns-review");
        assert_eq!(&argv[6..], &review[..]);
        assert!(argv[4].starts_with("\"$@\";") && argv[4].contains("read -r"), "{}", argv[4]);
        assert_eq!(terminal_words("none"), None);
        assert_eq!(terminal_words("  "), None);
        assert_eq!(review_words(socket, socket, false), "splitdns whitelist review");
        assert_eq!(
            review_words(Path::new("/tmp/s"), socket, true),
            "sudo splitdns --control-socket /tmp/s whitelist review"
        );
    }

    /// The shell line really runs the review's words as given and keeps the exit status.
    #[test]
    fn the_hold_script_runs_its_arguments() {
        let argv = terminal_argv(&[], &["printf".into(), "%s|".into(), "a b".into(), "$HOME".into()]);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run sh");
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.starts_with("a b|$HOME|"), "{out}");
        assert!(out.contains("Press Enter"), "{out}");
    }
}
