//! The trust-anchor whitelist: the domains a person approved for VPN-supplied DNSSEC trust anchors
//! (RFC 8598 §6, §8).
//!
//! A VPN server that pushes a DS record for a split domain can vouch for every DNSSEC-protected name
//! below it (addresses, TLSA, SSHFP, …), much like an enterprise CA. So an anchor is used only for a
//! domain at or under a whitelisted name, and an empty or missing whitelist means no anchor is used.
//!
//! # File format
//!
//! ```text
//! # Domains whose VPN-supplied DNSSEC trust anchors may be used.
//! corp.example                  # covers corp.example and every name under it
//! eng.example.net.              # a trailing dot is allowed; case does not matter
//! internal  override=public-suffix
//! corp.example profile=corp     # only the anchors the `corp` VPN profile offers
//! lab.example profile="Lab VPN" # a profile name with spaces, quoted
//! ```
//!
//! One domain per line; `#` starts a comment (whole line or trailing); blank lines are allowed. A
//! name covers its subdomains by whole labels: `example.net` covers `a.example.net`, never
//! `badexample.net`. The root `.` is never used; a top-level domain or public suffix (`com`,
//! `co.uk`, `github.io`, an unknown TLD such as `internal`, …) is used only when its line carries the
//! marker `override=public-suffix`. Such lines are ignored with a warning that names the line; any
//! other malformed line makes the whole file invalid (the caller then uses no anchor at all).
//!
//! `profile=NAME` binds a line to one VPN profile: approving `corp.example` for profile `corp`
//! approves that VPN's key, not any VPN's key for names under it. An anchor offered by another
//! profile for a name under a bound domain waits for review until a line approves it for that
//! profile ([`Whitelist::permits`]). `splitdns whitelist review` writes bound lines.
//!
//! Only people change the file: with `splitdns whitelist add|remove` (see [`add`] and [`remove`]) or
//! an editor. The daemon only reads it, after [`check_permissions`].
//!
//! # Limits
//!
//! A whitelist names the few domains a person approved, so a file over [`MAX_BYTES`] (1 MiB) or
//! [`MAX_LINES`] (10,000 lines, comments and blank lines included) is refused whole, by the daemon
//! (which keeps the last good list in force) and by `splitdns whitelist add|remove|review` alike,
//! with an error naming the limit and the file's size or line count. At most `MAX_BYTES + 1` bytes
//! are ever read, so a huge file costs no more than a full one. Parsing takes time linear in the
//! file's length (`cargo bench --bench whitelist` prints the figures).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::atomic_file::{self, Options, Temp};
use crate::domain::{DomainError, DomainName};
use crate::perms::{self, PermError, parent_dir};

/// The marker that lets a top-level domain or public suffix be whitelisted.
pub const OVERRIDE_MARKER: &str = "override=public-suffix";

/// Mode of a whitelist file that [`add`] creates.
const NEW_FILE_MODE: u32 = 0o644;

/// The largest whitelist read, in bytes (1 MiB): some 40,000 domains of typical length, far more
/// than any person approves one by one. A larger file is refused whole.
pub const MAX_BYTES: u64 = 1 << 20;

/// The most lines a whitelist may have (comments and blank lines count). More is refused whole.
pub const MAX_LINES: usize = 10_000;

/// One whitelisted domain, as read from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub domain: DomainName,
    /// The line of the file it came from (1-based).
    pub line: usize,
    /// The line carries [`OVERRIDE_MARKER`].
    pub public_suffix_override: bool,
    /// `profile=NAME`: the line approves only the anchors this VPN profile offers.
    pub profile: Option<String>,
}

/// The whitelist after the rules were applied: every entry here may be used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whitelist {
    entries: Vec<Entry>,
}

/// A parsed whitelist and the warnings for the lines it ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub list: Whitelist,
    /// One per ignored line, naming the line and saying how to fix it.
    pub warnings: Vec<String>,
}

/// What [`add`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The line was appended. `subsumes`: existing entries below the new one (now redundant).
    Added { domain: DomainName, subsumes: Vec<DomainName> },
    /// Nothing changed: the name is already covered by the entry `by` (possibly itself).
    AlreadyCovered { domain: DomainName, by: DomainName },
}

/// Why the whitelist could not be read, checked or changed. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum WhitelistError {
    #[error("{}line {line}: {reason}", path.as_deref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Syntax { path: Option<PathBuf>, line: usize, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Permissions(#[from] PermError),
    #[error("{}: the whitelist is {}, over the limit of {MAX_BYTES} bytes (1 MiB): a whitelist names only the few domains a person approved; shorten it with an editor", path.display(), size.map(|n| format!("{n} bytes")).unwrap_or_else(|| format!("more than {MAX_BYTES} bytes")))]
    TooBig { path: PathBuf, size: Option<u64> },
    #[error("{}: the whitelist has {lines} lines, over the limit of {MAX_LINES} lines: a whitelist names only the few domains a person approved; shorten it with an editor", path.display())]
    TooManyLines { path: PathBuf, lines: usize },
    #[error(
        "the root \".\" can never be whitelisted: an anchor for it would let a VPN vouch for every name on the Internet"
    )]
    Root,
    #[error(
        "{0} is a top-level domain or public suffix: names under it belong to many unrelated owners, and whitelisting it would let a VPN vouch for all of them. Whitelist the VPN's own domain below it instead, or, if you really mean it, override this check explicitly (`splitdns whitelist add {0} --override-public-suffix`)"
    )]
    PublicSuffix(DomainName),
    #[error(transparent)]
    Domain(DomainError),
}

impl WhitelistError {
    fn io(action: impl Into<String>, path: &Path, source: io::Error) -> Self {
        Self::Io { action: action.into(), path: path.to_path_buf(), source }
    }

    fn in_file(self, file: &Path) -> Self {
        match self {
            Self::Syntax { line, reason, .. } => Self::Syntax { path: Some(file.to_path_buf()), line, reason },
            other => other,
        }
    }
}

/// True for a top-level domain or a public suffix (`com`, `co.uk`, `github.io`, …), per the Public
/// Suffix List's ICANN and private sections. By the list's default rule `*`, every unknown TLD
/// (`internal`, `lan`, `example`) is one too.
pub fn is_public_suffix(name: &DomainName) -> bool {
    name.public_suffix() != crate::domain::PublicSuffix::No
}

/// Parses a domain name given by a person: the root becomes [`WhitelistError::Root`].
pub fn parse_name(text: &str) -> Result<DomainName, WhitelistError> {
    DomainName::parse(text.trim()).map_err(|e| match e {
        DomainError::Root => WhitelistError::Root,
        other => WhitelistError::Domain(other),
    })
}

/// Checks a name someone wants to add: a domain name, not the root, and not a public suffix unless
/// `override_public_suffix`. The CLI calls this before it asks anything.
pub fn check_new_entry(text: &str, override_public_suffix: bool) -> Result<DomainName, WhitelistError> {
    let name = parse_name(text)?;
    if is_public_suffix(&name) && !override_public_suffix {
        return Err(WhitelistError::PublicSuffix(name));
    }
    Ok(name)
}

/// What one line of the file says.
enum Line {
    Blank,
    Root,
    Entry { domain: DomainName, public_suffix_override: bool, profile: Option<String> },
}

/// The option that binds a line to a VPN profile.
pub const PROFILE_OPTION: &str = "profile=";

/// Longest profile name accepted (as for links).
const MAX_PROFILE_LEN: usize = 200;

/// The line's words after the domain: bare words, or `profile="…"` with the name quoted (profile
/// names such as NetworkManager connection names may hold spaces).
fn words(mut rest: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(out);
        }
        if let Some(quoted) = rest.strip_prefix("profile=\"") {
            let end = quoted.find('"').ok_or_else(|| format!("unterminated quote in {rest:?}"))?;
            out.push(format!("{PROFILE_OPTION}{}", &quoted[..end]));
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
}

/// Checks a profile name for a `profile=` option.
fn check_profile(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > MAX_PROFILE_LEN || name.contains('"') || name.chars().any(char::is_control) {
        return Err(format!(
            "profile={name:?}: a profile name is 1 to {MAX_PROFILE_LEN} printable characters without '\"' (quote \
             it if it has spaces: profile=\"Corp VPN\")"
        ));
    }
    Ok(name.to_string())
}

/// Parses one line (without its line terminator). `Err` is the reason, without the line number.
fn parse_line(raw: &str) -> Result<Line, String> {
    let content = raw.split('#').next().unwrap_or("");
    let trimmed = content.trim_start();
    let Some(name) = trimmed.split_whitespace().next() else { return Ok(Line::Blank) };
    let mut public_suffix_override = false;
    let mut profile = None;
    for token in words(&trimmed[name.len()..])? {
        if token == OVERRIDE_MARKER {
            public_suffix_override = true;
        } else if let Some(p) = token.strip_prefix(PROFILE_OPTION) {
            if profile.is_some() {
                return Err("two profile= options on one line: write one line per profile".into());
            }
            profile = Some(check_profile(p)?);
        } else {
            return Err(format!(
                "unexpected {token:?} after the domain (one domain per line; the options are {OVERRIDE_MARKER:?} and \
                 \"{PROFILE_OPTION}NAME\")"
            ));
        }
    }
    match DomainName::parse(name) {
        Ok(domain) => Ok(Line::Entry { domain, public_suffix_override, profile }),
        Err(DomainError::Root) => Ok(Line::Root),
        Err(e) => Err(e.to_string()),
    }
}

/// The file's lines with their terminators, numbered from 1; `content` is without `\n` / `\r\n`.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.split_inclusive('\n').enumerate().map(|(i, raw)| {
        let content = raw.strip_suffix('\n').unwrap_or(raw);
        (i + 1, raw, content.strip_suffix('\r').unwrap_or(content))
    })
}

impl Whitelist {
    /// The whitelist that covers nothing (what a missing file means).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the file's text and applies the rules. A malformed line is an error naming it; the
    /// root and unmarked public suffixes are ignored with a warning.
    ///
    /// Linear in the length of `text` (duplicates are found with a set, not a scan of the entries
    /// so far). No size limit applies here: [`Whitelist::load`] applies them while reading.
    pub fn parse(text: &str) -> Result<Parsed, WhitelistError> {
        let mut parsed = Parsed::default();
        let mut seen = HashSet::new();
        for (line, _, content) in numbered_lines(text) {
            match parse_line(content).map_err(|reason| WhitelistError::Syntax { path: None, line, reason })? {
                Line::Blank => {}
                Line::Root => parsed.warnings.push(format!(
                    "line {line}: the root \".\" is never whitelisted (an anchor for it would let a VPN vouch for \
                     every name): line ignored; delete it"
                )),
                Line::Entry { domain, public_suffix_override, profile } => {
                    if is_public_suffix(&domain) && !public_suffix_override {
                        parsed.warnings.push(format!(
                            "line {line}: {domain} is a top-level domain or public suffix (names under it belong to \
                             many unrelated owners): line ignored; whitelist the VPN's own domain below it instead, \
                             or, if you really mean it, append \"{OVERRIDE_MARKER}\" to the line"
                        ));
                    } else if seen.insert((domain.clone(), profile.clone())) {
                        parsed.list.entries.push(Entry { domain, line, public_suffix_override, profile });
                    }
                }
            }
        }
        Ok(parsed)
    }

    /// Reads and parses the file at `path`. A missing file is the empty whitelist, not an error; a
    /// file over [`MAX_BYTES`] or [`MAX_LINES`] is. Blocks on the file system: the daemon calls it
    /// off its runtime's worker threads. Call [`check_permissions`] first when the result decides
    /// what is trusted.
    pub fn load(path: &Path) -> Result<Parsed, WhitelistError> {
        match read(path)? {
            None => Ok(Parsed::default()),
            Some(text) => Self::parse(&text).map_err(|e| e.in_file(path)),
        }
    }

    /// The entry covering `name` (equal to it or an ancestor by whole labels), the closest if several,
    /// whatever profile it is bound to.
    pub fn covers(&self, name: &DomainName) -> Option<&DomainName> {
        self.entries.iter().map(|e| &e.domain).filter(|d| name.is_at_or_under(d)).max_by_key(|d| d.label_count())
    }

    /// Whether an anchor for `name` offered by a link of `profile` (`None`: a link without one) is
    /// approved: the closest entries covering `name` decide; one of them must be unbound or bound to
    /// this profile. `Ok` is the approving entry's domain; `Err` says why not, for the person.
    pub fn permits(&self, name: &DomainName, profile: Option<&str>) -> Result<&DomainName, String> {
        let covering: Vec<&Entry> = self.entries.iter().filter(|e| name.is_at_or_under(&e.domain)).collect();
        let Some(depth) = covering.iter().map(|e| e.domain.label_count()).max() else {
            return Err(format!("{name} is not on the whitelist"));
        };
        let closest: Vec<&&Entry> = covering.iter().filter(|e| e.domain.label_count() == depth).collect();
        if let Some(e) = closest.iter().find(|e| e.profile.is_none() || e.profile.as_deref() == profile) {
            return Ok(&e.domain);
        }
        let bound: Vec<String> = closest.iter().filter_map(|e| e.profile.as_ref()).map(|p| format!("{p:?}")).collect();
        Err(format!(
            "{} is approved only for VPN profile {} (whitelist line {}), not for {}",
            closest[0].domain,
            bound.join(", "),
            closest[0].line,
            match profile {
                Some(p) => format!("profile {p:?}"),
                None => "a link without a profile".to_string(),
            }
        ))
    }

    /// The line that already approves `name` for `profile` as a new line would (nothing to add):
    /// with a profile, a line bound to exactly that profile; without one, what the daemon itself
    /// accepts for a link without a profile ([`Whitelist::permits`]).
    pub fn already_approves(&self, name: &DomainName, profile: Option<&str>) -> Option<&DomainName> {
        match profile {
            Some(_) => self.bound_to(name, profile),
            None => self.permits(name, None).ok(),
        }
    }

    /// A line approving `name` for exactly this profile, if any.
    pub fn bound_to(&self, name: &DomainName, profile: Option<&str>) -> Option<&DomainName> {
        let profile = profile?;
        self.entries
            .iter()
            .filter(|e| e.profile.as_deref() == Some(profile) && name.is_at_or_under(&e.domain))
            .map(|e| &e.domain)
            .max_by_key(|d| d.label_count())
    }

    /// The entries in file order (duplicates dropped).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// True when no anchor may be used.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Lines as [`numbered_lines`] counts them: a last line without a terminator counts too.
fn count_lines(bytes: &[u8]) -> usize {
    let terminated = bytes.iter().filter(|&&b| b == b'\n').count();
    terminated + usize::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

/// The file's text, or `None` if it does not exist. Reads at most [`MAX_BYTES`] + 1 bytes and
/// refuses a file over [`MAX_BYTES`] or [`MAX_LINES`], or one that is not a regular file (a FIFO
/// would block the reader; it is opened non-blocking to find out).
fn read(path: &Path) -> Result<Option<String>, WhitelistError> {
    let fail = |e| WhitelistError::io("read the whitelist", path, e);
    let file = match File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(fail(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() as u64 > MAX_BYTES {
        let size = (meta.len() > MAX_BYTES).then_some(meta.len());
        return Err(WhitelistError::TooBig { path: path.to_path_buf(), size });
    }
    let lines = count_lines(&bytes);
    if lines > MAX_LINES {
        return Err(WhitelistError::TooManyLines { path: path.to_path_buf(), lines });
    }
    String::from_utf8(bytes).map(Some).map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Refuses a whitelist anyone but root or the daemon's user could change (see
/// [`perms::check`]). A missing file passes.
pub fn check_permissions(path: &Path, daemon_uid: u32) -> Result<(), WhitelistError> {
    Ok(perms::check(path, daemon_uid, &perms::WHITELIST)?)
}

/// Replaces the file at `path` with `contents` atomically: a temporary file in the same directory,
/// written, given the old file's owner and mode (or 0644 and the caller as owner for a new file),
/// fsynced, renamed over the file, and the directory fsynced. A symbolic link is followed.
fn write_atomic(path: &Path, contents: &str) -> Result<(), WhitelistError> {
    let (target, old) = match fs::metadata(path) {
        Ok(m) => (fs::canonicalize(path).map_err(|e| WhitelistError::io("resolve", path, e))?, Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (path.to_path_buf(), None),
        Err(e) => return Err(WhitelistError::io("read the whitelist", path, e)),
    };
    let dir = parent_dir(&target);
    if old.is_none() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| WhitelistError::io("create the directory", dir, e))?;
    }
    let options = Options {
        temp: Temp::Unique { prefix: ".whitelist.", suffix: ".tmp" },
        mode: Some(old.as_ref().map_or(NEW_FILE_MODE, |m| m.mode() & 0o7777)),
        owner: old.as_ref().map(|m| (m.uid(), m.gid())),
    };
    atomic_file::replace(&target, contents.as_bytes(), &options)
        .map_err(|e| WhitelistError::io(e.step.to_string(), &e.path, e.source))
}

/// Adds `domain` to the whitelist file at `path` (for the interactive prompt only: the daemon never
/// writes the file). Refuses the root always and a public suffix unless `override_public_suffix`
/// (its line then carries [`OVERRIDE_MARKER`]); refuses to touch a file that does not parse. A name
/// already covered changes nothing. Every other line is kept byte for byte, and so are the file's
/// owner and mode; a new file is created 0644, owned by the caller, with its directory if needed.
pub fn add(path: &Path, domain: &str, override_public_suffix: bool) -> Result<AddOutcome, WhitelistError> {
    add_for(path, domain, override_public_suffix, None)
}

/// [`add`], bound to a VPN profile when `profile` is given (`domain profile=NAME`): the line then
/// approves only that profile's anchors. A name already approved for the profile changes nothing.
pub fn add_for(
    path: &Path,
    domain: &str,
    override_public_suffix: bool,
    profile: Option<&str>,
) -> Result<AddOutcome, WhitelistError> {
    let name = check_new_entry(domain, override_public_suffix)?;
    let profile = match profile {
        Some(p) => Some(check_profile(p).map_err(|reason| WhitelistError::Syntax { path: None, line: 0, reason })?),
        None => None,
    };
    let text = read(path)?.unwrap_or_default();
    let parsed = Whitelist::parse(&text).map_err(|e| e.in_file(path))?;
    if let Some(by) = parsed.list.already_approves(&name, profile.as_deref()) {
        return Ok(AddOutcome::AlreadyCovered { domain: name.clone(), by: by.clone() });
    }
    let subsumes = parsed
        .list
        .entries()
        .iter()
        .filter(|e| e.domain.is_at_or_under(&name) && (profile.is_none() || e.profile == profile))
        .map(|e| e.domain.clone());
    let subsumes = subsumes.collect();
    let mut new_text = text;
    if !new_text.is_empty() && !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    let mut line = name.to_string();
    if is_public_suffix(&name) {
        line.push_str(&format!("  {OVERRIDE_MARKER}"));
    }
    if let Some(p) = &profile {
        match p.contains(char::is_whitespace) {
            true => line.push_str(&format!("  {PROFILE_OPTION}\"{p}\"")),
            false => line.push_str(&format!("  {PROFILE_OPTION}{p}")),
        }
    }
    new_text.push_str(&line);
    new_text.push('\n');
    write_atomic(path, &new_text)?;
    Ok(AddOutcome::Added { domain: name, subsumes })
}

/// Removes every line whose domain is `domain` (with its trailing comment) from the file at `path`,
/// keeping every other line byte for byte and the file's owner and mode. Returns false, and writes
/// nothing, when no line names it (a name only covered by a broader entry is not removed).
pub fn remove(path: &Path, domain: &str) -> Result<bool, WhitelistError> {
    let name = parse_name(domain)?;
    let Some(text) = read(path)? else { return Ok(false) };
    Whitelist::parse(&text).map_err(|e| e.in_file(path))?;
    let mut kept = String::with_capacity(text.len());
    let mut removed = false;
    for (_, raw, content) in numbered_lines(&text) {
        match parse_line(content) {
            Ok(Line::Entry { domain, .. }) if domain == name => removed = true,
            _ => kept.push_str(raw),
        }
    }
    if removed {
        write_atomic(path, &kept)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn names(w: &Whitelist) -> Vec<&str> {
        w.entries().iter().map(|e| e.domain.as_str()).collect()
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn my_uid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    /// A private temp dir (0700) with a whitelist path in it.
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whitelist");
        (dir, path)
    }

    #[test]
    fn lines_can_be_bound_to_a_profile() {
        let p = Whitelist::parse(
            "corp.example profile=corp\nlab.example profile=\"Lab VPN\"  # quoted, with a space\n\
             open.example\nopen.example profile=corp\neng.corp.example profile=eng\n",
        )
        .unwrap();
        let l = &p.list;
        assert_eq!(l.entries().len(), 5);
        // Bound: only that profile's anchors.
        assert_eq!(l.permits(&d("www.corp.example"), Some("corp")), Ok(&d("corp.example")));
        let err = l.permits(&d("corp.example"), Some("other")).unwrap_err();
        assert!(err.contains("only for VPN profile \"corp\"") && err.contains("profile \"other\""), "{err}");
        assert!(l.permits(&d("corp.example"), None).is_err(), "a link without a profile never matches a bound line");
        assert_eq!(l.permits(&d("x.lab.example"), Some("Lab VPN")), Ok(&d("lab.example")));
        // The closest line decides: eng.corp.example is approved for eng, and not for corp.
        assert_eq!(l.permits(&d("www.eng.corp.example"), Some("eng")), Ok(&d("eng.corp.example")));
        assert!(l.permits(&d("www.eng.corp.example"), Some("corp")).is_err());
        // An unbound line approves any profile.
        assert_eq!(l.permits(&d("open.example"), Some("anyone")), Ok(&d("open.example")));
        assert!(l.permits(&d("nothere.example"), Some("corp")).unwrap_err().contains("not on the whitelist"));
        assert_eq!(l.bound_to(&d("a.eng.corp.example"), Some("eng")), Some(&d("eng.corp.example")));
        assert_eq!(l.bound_to(&d("open.example"), Some("anyone")), None);
        for bad in ["a.example profile=", "a.example profile=\"x", "a.example profile=a profile=b", "a.example bogus"] {
            assert!(Whitelist::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn add_writes_a_bound_line_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whitelist");
        std::fs::write(&path, "# mine\ncorp.example profile=corp\n").unwrap();
        match add_for(&path, "eng.corp.example", false, Some("Eng VPN")).unwrap() {
            AddOutcome::Added { domain, .. } => assert_eq!(domain, d("eng.corp.example")),
            other => panic!("{other:?}"),
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# mine\ncorp.example profile=corp\neng.corp.example  profile=\"Eng VPN\"\n");
        let l = Whitelist::parse(&text).unwrap().list;
        assert_eq!(l.permits(&d("eng.corp.example"), Some("Eng VPN")), Ok(&d("eng.corp.example")));
        // Already approved for the profile: nothing changes.
        assert!(matches!(
            add_for(&path, "x.corp.example", false, Some("corp")).unwrap(),
            AddOutcome::AlreadyCovered { .. }
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn add_without_a_profile_asks_what_the_daemon_asks() {
        // corp.example approves any link, but eng.corp.example (closer) only the eng profile: the
        // daemon refuses a profile-less anchor for x.eng.corp.example, so adding it is a change.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whitelist");
        std::fs::write(
            &path,
            "corp.example
eng.corp.example profile=eng
",
        )
        .unwrap();
        let before = Whitelist::parse(&std::fs::read_to_string(&path).unwrap()).unwrap().list;
        assert!(before.permits(&d("x.eng.corp.example"), None).is_err());
        match add_for(&path, "x.eng.corp.example", false, None).unwrap() {
            AddOutcome::Added { domain, .. } => assert_eq!(domain, d("x.eng.corp.example")),
            other => panic!("{other:?}"),
        }
        let after = Whitelist::parse(&std::fs::read_to_string(&path).unwrap()).unwrap().list;
        assert_eq!(after.permits(&d("x.eng.corp.example"), None), Ok(&d("x.eng.corp.example")));
        // What the daemon already allows stays a no-op.
        assert!(matches!(add_for(&path, "y.corp.example", false, None).unwrap(), AddOutcome::AlreadyCovered { .. }));
    }

    #[test]
    fn parses_comments_blank_lines_case_and_trailing_dot() {
        let text = "# header\n\ncorp.example\n  Eng.Example.NET.   # trailing comment\n\t\r\nlab.corp.example\r\n";
        let p = Whitelist::parse(text).unwrap();
        assert_eq!(names(&p.list), ["corp.example", "eng.example.net", "lab.corp.example"]);
        assert_eq!(p.list.entries()[1].line, 4);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(!p.list.is_empty());
    }

    #[test]
    fn duplicates_are_listed_once() {
        let p = Whitelist::parse("corp.example\nCORP.example.\n").unwrap();
        assert_eq!(names(&p.list), ["corp.example"]);
        assert_eq!(p.list.entries()[0].line, 1);
    }

    #[test]
    fn root_is_ignored_with_a_warning_naming_the_line() {
        for text in
            ["corp.example\n.\n", "corp.example\n  .  # all of it\n", "corp.example\n. override=public-suffix\n"]
        {
            let p = Whitelist::parse(text).unwrap();
            assert_eq!(names(&p.list), ["corp.example"], "{text:?}");
            assert_eq!(p.warnings.len(), 1, "{text:?}");
            assert!(p.warnings[0].starts_with("line 2: the root"), "{}", p.warnings[0]);
            assert!(p.warnings[0].contains("delete it"), "{}", p.warnings[0]);
        }
    }

    #[test]
    fn public_suffixes_need_the_marker() {
        let text = "com\nco.uk\n\ngithub.io  # pages\ninternal\nExample\ncorp.example\n";
        let p = Whitelist::parse(text).unwrap();
        assert_eq!(names(&p.list), ["corp.example"]);
        let lines: Vec<&str> = p.warnings.iter().map(|w| w.split(':').next().unwrap()).collect();
        assert_eq!(lines, ["line 1", "line 2", "line 4", "line 5", "line 6"]);
        for w in &p.warnings {
            assert!(w.contains("public suffix") && w.contains(OVERRIDE_MARKER), "{w}");
        }
        let marked = "internal  override=public-suffix\nco.uk override=public-suffix # really\n";
        let p = Whitelist::parse(marked).unwrap();
        assert_eq!(names(&p.list), ["internal", "co.uk"]);
        assert!(p.list.entries().iter().all(|e| e.public_suffix_override));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn public_suffix_list_lookup() {
        for suffix in ["com", "uk", "co.uk", "github.io", "internal", "lan", "example", "xn--p1ai"] {
            assert!(is_public_suffix(&d(suffix)), "{suffix} should be a public suffix");
        }
        for name in ["example.com", "corp.example", "corp.example.co.uk", "user.github.io", "a.internal"] {
            assert!(!is_public_suffix(&d(name)), "{name} should not be a public suffix");
        }
    }

    #[test]
    fn covers_by_whole_labels() {
        let p = Whitelist::parse("example.net\nlab.example.net\n").unwrap();
        let w = &p.list;
        assert_eq!(w.covers(&d("antartica.example.net")), Some(&d("example.net")));
        assert_eq!(w.covers(&d("example.net")), Some(&d("example.net")));
        assert_eq!(w.covers(&d("x.lab.example.net")), Some(&d("lab.example.net")));
        assert_eq!(w.covers(&d("badexample.net")), None);
        assert_eq!(w.covers(&d("net")), None);
        assert_eq!(w.covers(&d("example.org")), None);
    }

    #[test]
    fn empty_and_missing_cover_nothing() {
        let (_dir, path) = scratch();
        for w in [
            Whitelist::empty(),
            Whitelist::parse("").unwrap().list,
            Whitelist::parse("# only comments\n\n   \n").unwrap().list,
            Whitelist::load(&path).unwrap().list,
        ] {
            assert!(w.is_empty());
            assert!(w.entries().is_empty());
            assert_eq!(w.covers(&d("corp.example")), None);
        }
    }

    #[test]
    fn malformed_lines_are_errors_with_the_line_number() {
        let e = Whitelist::parse("# c\ncorp.example\ncorp..example\n").unwrap_err();
        assert!(matches!(e, WhitelistError::Syntax { line: 3, .. }), "{e:?}");
        assert!(e.to_string().starts_with("line 3: \"corp..example\" is not a domain name: "), "{e}");
        for bad in ["a b.example", "corp.example override", "corp.example override=everything", "é.example", "a_b.c"] {
            let e = Whitelist::parse(&format!("ok.example\n{bad}\n")).unwrap_err();
            assert!(matches!(e, WhitelistError::Syntax { line: 2, .. }), "{bad:?}: {e:?}");
        }
        let (_dir, path) = scratch();
        fs::write(&path, "corp.example\n\nx..y\n").unwrap();
        let e = Whitelist::load(&path).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: line 3: {}", path.display(), DomainName::parse("x..y").unwrap_err()));
    }

    #[test]
    fn load_reads_the_file() {
        let (_dir, path) = scratch();
        fs::write(&path, "corp.example\ncom\n").unwrap();
        let p = Whitelist::load(&path).unwrap();
        assert_eq!(names(&p.list), ["corp.example"]);
        assert_eq!(p.warnings.len(), 1);
        // A directory where the file should be is an error, not an empty list.
        let (_dir2, path2) = scratch();
        fs::create_dir(&path2).unwrap();
        assert!(matches!(Whitelist::load(&path2), Err(WhitelistError::Io { .. })));
    }

    #[test]
    fn permissions_like_strict_modes() {
        let (dir, path) = scratch();
        // Missing file passes.
        check_permissions(&path, my_uid()).unwrap();
        fs::write(&path, "corp.example\n").unwrap();
        set_mode(&path, 0o644);
        check_permissions(&path, my_uid()).unwrap();
        check_permissions(&path, 4242).unwrap_or_else(|e| {
            // Owned by root passes for any daemon; owned by a user only for that user's daemon.
            assert_ne!(my_uid(), 0, "{e}");
        });

        for (mode, by) in [(0o664, "its group"), (0o646, "everyone"), (0o666, "its group and everyone")] {
            set_mode(&path, mode);
            let e = check_permissions(&path, my_uid()).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("writable by {by}")), "{msg}");
            assert!(msg.ends_with(&format!("fix it with `chmod go-w {}`", path.display())), "{msg}");
        }
        set_mode(&path, 0o600);
        check_permissions(&path, my_uid()).unwrap();

        // The directory: writable by others means anyone could swap the file.
        set_mode(dir.path(), 0o777);
        let e = check_permissions(&path, my_uid()).unwrap_err();
        assert!(
            matches!(&e, WhitelistError::Permissions(PermError::Unsafe { path: p, fix, .. }) if p == dir.path() && fix.starts_with("chmod go-w")),
            "{e}"
        );
        set_mode(dir.path(), 0o755);
        check_permissions(&path, my_uid()).unwrap();
    }

    #[test]
    fn permissions_refuse_a_foreign_owner() {
        let (_dir, path) = scratch();
        fs::write(&path, "corp.example\n").unwrap();
        set_mode(&path, 0o644);
        if my_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        }
        let owner = fs::metadata(&path).unwrap().uid();
        assert_ne!(owner, 0);
        check_permissions(&path, owner).unwrap();
        let e = check_permissions(&path, owner + 1).unwrap_err();
        assert!(e.to_string().contains(&format!("owned by uid {owner}")), "{e}");
        assert!(e.to_string().ends_with(&format!("`chown root {}`", path.display())), "{e}");
        // Both problems at once: both fixes.
        set_mode(&path, 0o666);
        let e = check_permissions(&path, owner + 1).unwrap_err();
        assert!(e.to_string().contains("chown root") && e.to_string().contains("chmod go-w"), "{e}");
    }

    #[test]
    fn permissions_follow_a_symlink_and_check_its_directory() {
        let (real_dir, real) = scratch();
        fs::write(&real, "corp.example\n").unwrap();
        set_mode(&real, 0o644);
        let (link_dir, link) = scratch();
        symlink(&real, &link).unwrap();
        check_permissions(&link, my_uid()).unwrap();
        set_mode(&real, 0o666);
        assert!(check_permissions(&link, my_uid()).is_err());
        set_mode(&real, 0o644);
        set_mode(real_dir.path(), 0o777);
        assert!(check_permissions(&link, my_uid()).is_err());
        set_mode(real_dir.path(), 0o700);
        set_mode(link_dir.path(), 0o777);
        assert!(check_permissions(&link, my_uid()).is_err());
    }

    #[test]
    fn a_foreign_owner_is_named_in_a_sentence_that_reads_right() {
        let (_dir, path) = scratch();
        fs::write(&path, "corp.example\n").unwrap();
        set_mode(&path, 0o644);
        if my_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        }
        let owner = fs::metadata(&path).unwrap().uid();
        // A daemon running as root: only root may own the whitelist.
        let e = check_permissions(&path, 0).unwrap_err().to_string();
        assert!(e.contains(&format!("is owned by uid {owner}, which is not root, so someone other than root")), "{e}");
        // A daemon running as another user: root or that user.
        let e = check_permissions(&path, owner + 1).unwrap_err().to_string();
        let daemon = format!("which is neither root nor the daemon's user (uid {})", owner + 1);
        assert!(e.contains(&format!("is owned by uid {owner}, {daemon}, so someone")), "{e}");
    }

    #[test]
    fn a_file_over_the_limits_is_refused_naming_the_limit_and_its_size() {
        let (_dir, path) = scratch();
        // Exactly at the limits: read.
        let full: String = (0..MAX_LINES).map(|i| format!("h{i}.corp.example\n")).collect();
        fs::write(&path, &full).unwrap();
        assert_eq!(Whitelist::load(&path).unwrap().list.entries().len(), MAX_LINES);
        // One line more (the last without a newline still counts).
        fs::write(&path, format!("{full}one.more.example")).unwrap();
        let e = Whitelist::load(&path).unwrap_err();
        assert!(matches!(e, WhitelistError::TooManyLines { lines: 10_001, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("has 10001 lines, over the limit of 10000 lines"), "{msg}");
        // Comments and blank lines count: the limit is on the file, not its entries.
        fs::write(&path, "#\n".repeat(MAX_LINES + 1)).unwrap();
        assert!(matches!(Whitelist::load(&path), Err(WhitelistError::TooManyLines { .. })));
        // One byte over 1 MiB, in few lines.
        let long = format!("{}.example\n", "a".repeat(60));
        let mut big = long.repeat((MAX_BYTES as usize) / long.len() + 1);
        big.truncate(MAX_BYTES as usize + 1);
        fs::write(&path, &big).unwrap();
        let msg = Whitelist::load(&path).unwrap_err().to_string();
        assert!(msg.contains("is 1048577 bytes, over the limit of 1048576 bytes (1 MiB)"), "{msg}");
        // The editing commands refuse it too, and leave it alone.
        assert!(matches!(add(&path, "corp.example", false), Err(WhitelistError::TooBig { .. })));
        assert!(matches!(remove(&path, "corp.example"), Err(WhitelistError::TooBig { .. })));
        assert_eq!(fs::read(&path).unwrap(), big.as_bytes());
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_without_blocking() {
        let (dir, path) = scratch();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = Whitelist::load(&path).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        drop(dir);
        let e = Whitelist::load(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn lines_are_counted_like_the_parser_numbers_them() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\n"), 1);
        assert_eq!(count_lines(b"a\nb"), 2);
        assert_eq!(count_lines(b"\n\n"), 2);
        let text = "a.example\r\n\n# c\nb.example";
        assert_eq!(count_lines(text.as_bytes()), numbered_lines(text).count());
    }

    #[test]
    fn many_distinct_and_duplicate_lines_parse_in_file_order() {
        let mut text: String = (0..5_000).map(|i| format!("h{i}.corp.example\n")).collect();
        text.push_str("H0.Corp.Example.\nh4999.corp.example\n");
        let p = Whitelist::parse(&text).unwrap();
        assert_eq!(p.list.entries().len(), 5_000);
        assert_eq!(p.list.entries()[0].domain.as_str(), "h0.corp.example");
        assert_eq!(p.list.entries()[0].line, 1);
        assert_eq!(p.list.entries()[4_999].line, 5_000);
    }

    #[test]
    fn add_creates_a_new_file_0644_and_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/splitdns/whitelist");
        let out = add(&path, "Corp.Example.", false).unwrap();
        assert_eq!(out, AddOutcome::Added { domain: d("corp.example"), subsumes: vec![] });
        assert_eq!(fs::read_to_string(&path).unwrap(), "corp.example\n");
        assert_eq!(mode_of(&path), 0o644);
        assert_eq!(fs::metadata(&path).unwrap().uid(), my_uid());
        let dir_mode = mode_of(path.parent().unwrap());
        assert_eq!(dir_mode & 0o022, 0, "{dir_mode:o}");
        // No temporary file left behind.
        let files: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, [std::ffi::OsString::from("whitelist")]);
    }

    #[test]
    fn add_keeps_other_lines_mode_and_owner() {
        let (_dir, path) = scratch();
        let before = "# approved by IT\r\ncorp.example   # corp VPN\n\n# no newline at the end\nlab.example.org";
        fs::write(&path, before).unwrap();
        set_mode(&path, 0o600);
        let owner = if my_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(4242), Some(4343)).unwrap();
            (4242, 4343)
        } else {
            let m = fs::metadata(&path).unwrap();
            (m.uid(), m.gid())
        };
        let out = add(&path, "eng.example.net", false).unwrap();
        assert!(matches!(out, AddOutcome::Added { .. }));
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{before}\neng.example.net\n"));
        assert_eq!(mode_of(&path), 0o600);
        let m = fs::metadata(&path).unwrap();
        assert_eq!((m.uid(), m.gid()), owner);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn add_of_a_covered_name_changes_nothing() {
        let (_dir, path) = scratch();
        fs::write(&path, "example.net\n").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        for name in ["example.net", "a.b.example.net", "EXAMPLE.net."] {
            let out = add(&path, name, false).unwrap();
            assert_eq!(out, AddOutcome::AlreadyCovered { domain: d(name), by: d("example.net") });
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "example.net\n");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "file was rewritten");
        // Not covered: a sibling sharing a suffix of characters only.
        assert!(matches!(add(&path, "badexample.net", false).unwrap(), AddOutcome::Added { .. }));
    }

    #[test]
    fn add_reports_entries_it_subsumes() {
        let (_dir, path) = scratch();
        fs::write(&path, "a.example.net\nb.example.net\nother.example\n").unwrap();
        let out = add(&path, "example.net", false).unwrap();
        assert_eq!(
            out,
            AddOutcome::Added { domain: d("example.net"), subsumes: vec![d("a.example.net"), d("b.example.net")] }
        );
    }

    #[test]
    fn add_refuses_root_and_public_suffixes() {
        let (_dir, path) = scratch();
        assert!(matches!(add(&path, ".", false), Err(WhitelistError::Root)));
        assert!(matches!(add(&path, ".", true), Err(WhitelistError::Root)));
        for suffix in ["com", "co.uk", "github.io", "internal"] {
            let e = add(&path, suffix, false).unwrap_err();
            assert!(matches!(&e, WhitelistError::PublicSuffix(n) if n.as_str() == suffix), "{e:?}");
            assert!(e.to_string().contains("--override-public-suffix"), "{e}");
        }
        assert!(matches!(add(&path, "corp..example", false), Err(WhitelistError::Domain(_))));
        assert!(!path.exists(), "a refused add created the file");
    }

    #[test]
    fn add_with_override_writes_the_marker() {
        let (_dir, path) = scratch();
        add(&path, "internal", true).unwrap();
        // The override is only written where it is needed.
        add(&path, "corp.example", true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "internal  override=public-suffix\ncorp.example\n");
        let p = Whitelist::load(&path).unwrap();
        assert_eq!(names(&p.list), ["internal", "corp.example"]);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn edits_refuse_a_file_that_does_not_parse() {
        let (_dir, path) = scratch();
        fs::write(&path, "corp.example\nbad name\n").unwrap();
        let e = add(&path, "eng.example", false).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{}: line 2: ", path.display())), "{e}");
        assert!(remove(&path, "corp.example").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "corp.example\nbad name\n");
    }

    #[test]
    fn remove_drops_only_that_domain() {
        let (_dir, path) = scratch();
        let before = "# IT approved\r\ncorp.example  # corp\nlab.corp.example\n\n# keep me\nCORP.example.\nnet\n";
        fs::write(&path, before).unwrap();
        set_mode(&path, 0o640);
        assert!(remove(&path, "corp.example").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "# IT approved\r\nlab.corp.example\n\n# keep me\nnet\n");
        assert_eq!(mode_of(&path), 0o640);
        // An ignored public-suffix line can be removed too.
        assert!(remove(&path, "net").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "# IT approved\r\nlab.corp.example\n\n# keep me\n");
    }

    #[test]
    fn remove_of_an_absent_name_writes_nothing() {
        let (_dir, path) = scratch();
        assert!(!remove(&path, "corp.example").unwrap());
        assert!(!path.exists());
        fs::write(&path, "corp.example\n").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        // Covered by an entry, but not an entry itself: not removed.
        assert!(!remove(&path, "a.corp.example").unwrap());
        assert!(!remove(&path, "badcorp.example").unwrap());
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        assert!(matches!(remove(&path, "."), Err(WhitelistError::Root)));
    }

    #[test]
    fn edits_follow_a_symlink() {
        let (_real_dir, real) = scratch();
        fs::write(&real, "corp.example\n").unwrap();
        let (_link_dir, link) = scratch();
        symlink(&real, &link).unwrap();
        add(&link, "eng.example", false).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "corp.example\neng.example\n");
    }
}
