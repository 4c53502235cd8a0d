//! Watching a file for changes with `notify` (inotify on Linux), so an edit takes effect at once
//! and nothing polls.
//!
//! The watch is on the file's directory, not the file: editors replace files by rename, which a
//! watch on the old inode would miss. When the directory does not exist yet, the deepest existing
//! ancestor is watched instead and the watch moves down as directories appear, so a whitelist whose
//! directory is created later still takes effect. Bursts of events are coalesced into one call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Quiet time after the last event before `on_change` runs (an editor's save is several events).
const SETTLE: Duration = Duration::from_millis(50);

/// Watches `file` and calls `on_change` after it (or its directory) changes, until `stop` fires.
/// Returns an error only if no watch could be set up at all.
pub fn watch_file(
    file: PathBuf,
    stop: CancellationToken,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let target = file.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only events about the file itself or a directory on the way to it: other files in the
        // same directory (a state file, an editor's swap file) must not wake us.
        if let Ok(event) = event
            && changes_content(&event.kind)
            && (event.need_rescan() || event.paths.iter().any(|p| concerns(&target, p)))
        {
            let _ = tx.send(());
        }
    })?;
    let mut watched = arm(&mut watcher, &file, None)?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
            // Coalesce the burst.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            match arm(&mut watcher, &file, Some(&watched)) {
                Ok(w) => watched = w,
                Err(e) => warn!(file = %file.display(), error = %e, "cannot re-arm the file watch"),
            }
            on_change();
        }
        debug!(file = %file.display(), "file watch stopped");
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

/// Points the watch at the deepest existing directory on the way to `file`; returns it.
fn arm(watcher: &mut RecommendedWatcher, file: &Path, current: Option<&PathBuf>) -> notify::Result<PathBuf> {
    let mut dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    while !dir.is_dir() {
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    if current == Some(&dir) {
        return Ok(dir);
    }
    if let Some(old) = current {
        let _ = watcher.unwatch(old);
    }
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    debug!(dir = %dir.display(), file = %file.display(), "watching");
    Ok(dir)
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
}
