//! Watching files for changes with `notify` (inotify on Linux), so an edit takes effect at once
//! and nothing polls: the whitelist, and the resolv.conf files the default upstream follows.
//!
//! The watch is on each file's directory, not the file: editors and network managers replace files
//! by rename, which a watch on the old inode would miss. When a directory does not exist yet, the
//! deepest existing ancestor is watched instead and the watch moves down as directories appear, so
//! a file whose directory is created later (`/run/NetworkManager` after boot) still takes effect.
//! Only events about the files themselves (or directories on the way to them) count; opens and
//! reads do not. Bursts of events are coalesced into one call, and the call is awaited before the
//! next burst is looked at, so a slow reload (the whitelist's, on a blocking thread) is never run
//! twice at once by the watch; events that arrive meanwhile make one more call after it.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Quiet time after the last event before `on_change` runs (an editor's save is several events).
const SETTLE: Duration = Duration::from_millis(50);

/// Watches `file` and calls (and awaits) `on_change` after it (or its directory) changes, until
/// `stop` fires. Returns an error only if no watch could be set up at all.
pub(crate) fn watch_file<F, Fut>(
    file: PathBuf,
    stop: CancellationToken,
    on_change: F,
) -> notify::Result<tokio::task::JoinHandle<()>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    watch_files(vec![file], stop, on_change)
}

/// Watches every file in `files` and calls (and awaits) `on_change` after any of them (or a
/// directory on the way to one) changes, until `stop` fires. Returns an error only if no watch
/// could be set up. `on_change` runs on the runtime: anything slow in it belongs on a blocking
/// thread.
pub(crate) fn watch_files<F, Fut>(
    files: Vec<PathBuf>,
    stop: CancellationToken,
    on_change: F,
) -> notify::Result<tokio::task::JoinHandle<()>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let targets = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only events about the files themselves or a directory on the way to them: other files in
        // the same directory (a state file, an editor's swap file, the rest of /etc) must not wake us.
        if let Ok(event) = event
            && changes_content(&event.kind)
            && (event.need_rescan() || event.paths.iter().any(|p| targets.iter().any(|t| concerns(t, p))))
        {
            let _ = tx.send(());
        }
    })?;
    let mut watched = arm(&mut watcher, &files, &HashSet::new())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
            // Coalesce the burst.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            match arm(&mut watcher, &files, &watched) {
                Ok(w) => watched = w,
                Err(e) => warn!(files = ?files, error = %e, "cannot re-arm the file watch"),
            }
            on_change().await;
        }
        debug!(files = ?files, "file watch stopped");
    }))
}

/// True when an event on `path` may change what `file` reads: the file itself, or a directory
/// that is (or leads to) its directory.
/// Whether an event can mean new content. notify also reports opens and reads (inotify
/// `IN_OPEN`, `IN_CLOSE_NOWRITE`); reloading on those would make every reload trigger the next.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn concerns(file: &Path, path: &Path) -> bool {
    path == file || file.starts_with(path)
}

/// The deepest existing directory on the way to `file`.
fn deepest_dir(file: &Path) -> PathBuf {
    let mut dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    while !dir.is_dir() {
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    dir
}

/// Points the watch at the deepest existing directory on the way to each file; returns the set of
/// directories watched now. Directories no longer needed are unwatched.
fn arm(
    watcher: &mut RecommendedWatcher,
    files: &[PathBuf],
    current: &HashSet<PathBuf>,
) -> notify::Result<HashSet<PathBuf>> {
    let wanted: HashSet<PathBuf> = files.iter().map(|f| deepest_dir(f)).collect();
    for old in current.difference(&wanted) {
        let _ = watcher.unwatch(old);
    }
    let mut armed = HashSet::new();
    let mut last_error = None;
    for dir in &wanted {
        if current.contains(dir) {
            armed.insert(dir.clone());
            continue;
        }
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                debug!(dir = %dir.display(), "watching");
                armed.insert(dir.clone());
            }
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) if armed.is_empty() => Err(e),
        _ => Ok(armed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn wait_for(counter: &AtomicUsize, at_least: usize) -> bool {
        for _ in 0..200 {
            if counter.load(Ordering::SeqCst) >= at_least {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn sees_rename_replace_and_late_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/whitelist");
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let stop = CancellationToken::new();
        let task = watch_file(file.clone(), stop.clone(), move || {
            c.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        })
        .unwrap();
        // Directories created later, then the file.
        std::fs::create_dir(dir.path().join("a")).unwrap();
        assert!(wait_for(&count, 1).await, "creating a/ should be seen");
        std::fs::create_dir(dir.path().join("a/b")).unwrap();
        assert!(wait_for(&count, 2).await, "creating a/b/ should be seen");
        std::fs::write(&file, "corp.example\n").unwrap();
        assert!(wait_for(&count, 3).await, "creating the file should be seen");
        // An editor's save: write a temporary file and rename it over the original.
        let before = count.load(Ordering::SeqCst);
        let tmp = dir.path().join("a/b/.whitelist.swp");
        std::fs::write(&tmp, "corp.example\nlab.example\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert!(wait_for(&count, before + 1).await, "rename over the file should be seen");
        // Other files in the directory do not count.
        let quiet = count.load(Ordering::SeqCst);
        std::fs::write(dir.path().join("a/b/links.json"), "{}").unwrap();
        // Reading the file (as every reload does) is not a change.
        for _ in 0..5 {
            std::fs::read_to_string(&file).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count.load(Ordering::SeqCst), quiet, "a neighbour file or a read woke the watcher");
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn follows_several_files_in_several_directories() {
        let dir = tempfile::tempdir().unwrap();
        let nm = dir.path().join("run/NetworkManager/no-stub-resolv.conf");
        let etc = dir.path().join("etc/resolv.conf");
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let stop = CancellationToken::new();
        let task = watch_files(vec![nm.clone(), etc.clone()], stop.clone(), move || {
            c.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        })
        .unwrap();
        std::fs::write(&etc, "nameserver 192.0.2.1\n").unwrap();
        assert!(wait_for(&count, 1).await, "a write to the first file should be seen");
        std::fs::create_dir_all(nm.parent().unwrap()).unwrap();
        let seen = count.load(Ordering::SeqCst);
        let tmp = dir.path().join("run/NetworkManager/.tmp");
        std::fs::write(&tmp, "nameserver 192.0.2.2\n").unwrap();
        std::fs::rename(&tmp, &nm).unwrap();
        assert!(wait_for(&count, seen + 1).await, "a file replaced by rename in a late directory should be seen");
        let quiet = count.load(Ordering::SeqCst);
        std::fs::write(dir.path().join("etc/hosts"), "127.0.0.1 x\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count.load(Ordering::SeqCst), quiet, "a neighbour in /etc woke the watcher");
        stop.cancel();
        task.await.unwrap();
    }
}
