//! `splitdns whitelist list|add|remove` through a real pseudo-terminal: the prompt explains what
//! approving means, only `y`/`yes` changes the file, and nothing changes without a terminal.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

/// How long one expectation may wait for the binary.
const TIMEOUT_MS: u64 = 10_000;

/// `splitdns whitelist --whitelist PATH ARGS…`, with no whitelist from the environment.
fn splitdns(path: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splitdns"));
    c.arg("whitelist").arg("--whitelist").arg(path).args(args).env_remove("SPLITDNS_WHITELIST");
    c
}

/// A private temp dir and a whitelist path in it (the file does not exist yet).
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whitelist");
    (dir, path)
}

fn on_pty(cmd: Command) -> PtySession {
    rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawn on a pty")
}

/// Waits for the question, returns what was shown before it.
fn until_question(p: &mut PtySession) -> String {
    p.exp_string("[y/N] ").expect("the question")
}

/// Reads to the end and returns the rest of the output and the exit code.
fn finish(mut p: PtySession) -> (String, i32) {
    let rest = p.exp_eof().expect("end of output");
    match p.process().wait().expect("wait") {
        WaitStatus::Exited(_, code) => (rest, code),
        other => panic!("splitdns did not exit normally: {other:?}\n{rest}"),
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn y_adds_and_keeps_comments_and_mode() {
    let (_dir, path) = scratch();
    let before = "# approved by IT\ncorp.example   # the corp VPN\n";
    fs::write(&path, before).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    let mut p = on_pty(splitdns(&path, &["add", "Eng.Example.NET"]));
    let shown = until_question(&mut p);
    for needle in ["eng.example.net", "every name under it", "www.eng.example.net", "TLSA", "SSHFP", "enterprise"] {
        assert!(shown.contains(needle), "the explanation lacks {needle:?}:\n{shown}");
    }
    assert!(!shown.contains("WARNING"), "{shown}");
    p.send_line("y").unwrap();
    let (rest, code) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("Added eng.example.net"), "{rest}");
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{before}eng.example.net\n"));
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn yes_creates_a_new_file() {
    let (dir, _) = scratch();
    let path = dir.path().join("splitdns/whitelist");
    let mut p = on_pty(splitdns(&path, &["add", "corp.example"]));
    until_question(&mut p);
    p.send_line("YES").unwrap();
    let (rest, code) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "corp.example\n");
    assert_eq!(mode_of(&path), 0o644);
}

#[test]
fn enter_means_no() {
    let (_dir, path) = scratch();
    let mut p = on_pty(splitdns(&path, &["add", "corp.example"]));
    until_question(&mut p);
    p.send_line("").unwrap();
    let (rest, code) = finish(p);
    assert_ne!(code, 0, "{rest}");
    assert!(rest.contains("nothing changed"), "{rest}");
    assert!(!path.exists(), "a declined add created the file");
}

#[test]
fn n_or_anything_else_means_no() {
    let (_dir, path) = scratch();
    fs::write(&path, "# mine\n").unwrap();
    for answer in ["n", "ok", "sure"] {
        let mut p = on_pty(splitdns(&path, &["add", "corp.example"]));
        until_question(&mut p);
        p.send_line(answer).unwrap();
        let (rest, code) = finish(p);
        assert_ne!(code, 0, "{answer:?}: {rest}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "# mine\n", "{answer:?} changed the file");
    }
}

#[test]
fn root_and_public_suffixes_are_refused_without_asking() {
    let (_dir, path) = scratch();
    for (name, why) in
        [(".", "root"), ("com", "public suffix"), ("co.uk", "public suffix"), ("internal", "public suffix")]
    {
        let p = on_pty(splitdns(&path, &["add", name]));
        let (out, code) = finish(p);
        assert_ne!(code, 0, "{name}: {out}");
        assert!(!out.contains("[y/N]"), "{name}: asked anyway:\n{out}");
        assert!(out.contains(why), "{name}: {out}");
        if name != "." {
            assert!(out.contains("--override-public-suffix"), "{name}: {out}");
        }
    }
    assert!(!path.exists());
}

#[test]
fn override_asks_with_a_warning_and_writes_the_marker() {
    let (_dir, path) = scratch();
    let mut p = on_pty(splitdns(&path, &["add", "internal", "--override-public-suffix"]));
    let shown = until_question(&mut p);
    assert!(shown.contains("WARNING") && shown.contains("public suffix"), "{shown}");
    p.send_line("y").unwrap();
    let (rest, code) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "internal  override=public-suffix\n");
}

#[test]
fn an_already_covered_name_is_not_asked_about() {
    let (_dir, path) = scratch();
    fs::write(&path, "corp.example\n").unwrap();
    let p = on_pty(splitdns(&path, &["add", "www.corp.example"]));
    let (out, code) = finish(p);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("[y/N]") && out.contains("already covered by the entry corp.example"), "{out}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "corp.example\n");
}

fn run_without_terminal(path: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = splitdns(path, args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match stdin {
        None => cmd.stdin(Stdio::null()).output().unwrap(),
        Some(text) => {
            let mut child = cmd.stdin(Stdio::piped()).spawn().unwrap();
            // The child may exit before reading: a broken pipe here is fine.
            let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
            child.wait_with_output().unwrap()
        }
    }
}

#[test]
fn no_terminal_changes_nothing() {
    let (_dir, path) = scratch();
    fs::write(&path, "corp.example\n").unwrap();
    for (args, stdin) in [
        (&["add", "eng.example"][..], None),
        (&["add", "eng.example"][..], Some("y\n")),
        (&["remove", "corp.example"][..], None),
        (&["remove", "corp.example"][..], Some("yes\n")),
    ] {
        let out = run_without_terminal(&path, args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {stdin:?} succeeded: {stderr}");
        assert!(stderr.contains("standard input is not a terminal"), "{args:?}: {stderr}");
        assert!(!stderr.contains("[y/N]"), "{args:?}: {stderr}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "corp.example\n", "{args:?} {stdin:?} changed the file");
    }
}

#[test]
fn remove_y_removes_only_that_line() {
    let (_dir, path) = scratch();
    fs::write(&path, "# header\ncorp.example   # corp\n# middle\neng.example\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

    // Enter keeps it.
    let mut p = on_pty(splitdns(&path, &["remove", "corp.example"]));
    until_question(&mut p);
    p.send_line("").unwrap();
    let (rest, code) = finish(p);
    assert_ne!(code, 0, "{rest}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "# header\ncorp.example   # corp\n# middle\neng.example\n");

    let mut p = on_pty(splitdns(&path, &["remove", "corp.example"]));
    let shown = until_question(&mut p);
    assert!(shown.contains("corp.example"), "{shown}");
    p.send_line("y").unwrap();
    let (rest, code) = finish(p);
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("Removed corp.example"), "{rest}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "# header\n# middle\neng.example\n");
    assert_eq!(mode_of(&path), 0o640);
}

#[test]
fn remove_of_a_name_not_listed_does_not_ask() {
    let (_dir, path) = scratch();
    fs::write(&path, "corp.example\n").unwrap();
    let p = on_pty(splitdns(&path, &["remove", "www.corp.example"]));
    let (out, code) = finish(p);
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("[y/N]") && out.contains("covered by the entry corp.example"), "{out}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "corp.example\n");
}

#[test]
fn list_shows_entries_and_warnings() {
    let (_dir, path) = scratch();
    fs::write(&path, "# comment\ncorp.example  # corp\n\ninternal override=public-suffix\ncom\n").unwrap();
    let out = splitdns(&path, &["list"]).stdin(Stdio::null()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "corp.example\ninternal  override=public-suffix\n");
    assert!(stderr.contains("line 5: com is a top-level domain or public suffix"), "{stderr}");

    // The environment variable names the file too.
    let out = Command::new(env!("CARGO_BIN_EXE_splitdns"))
        .args(["whitelist", "list"])
        .env("SPLITDNS_WHITELIST", &path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "corp.example\ninternal  override=public-suffix\n");

    // A missing file is an empty list; a broken one is an error naming the line.
    let (_dir2, missing) = scratch();
    let out = splitdns(&missing, &["list"]).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trust anchor"));
    fs::write(&missing, "corp.example\ncorp..example\n").unwrap();
    let out = splitdns(&missing, &["list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: \"corp..example\" is not a domain name"));
}

#[test]
fn an_oversized_whitelist_is_refused_by_list_add_and_remove_without_asking() {
    let (_dir, path) = scratch();
    let huge: String = (0..100_000).map(|i| format!("host{i:06}.corp.example\n")).collect();
    fs::write(&path, &huge).unwrap();
    let size = format!("is {} bytes, over the limit of 1048576 bytes (1 MiB)", huge.len());
    for args in [&["add", "eng.example"][..], &["remove", "host000001.corp.example"], &["list"]] {
        let p = on_pty(splitdns(&path, args));
        let (out, code) = finish(p);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(out.contains(&size) && out.contains("shorten it"), "{args:?}: {out}");
        assert!(!out.contains("[y/N]"), "{args:?} asked about an oversized file: {out}");
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), huge, "the oversized file was changed");
}
