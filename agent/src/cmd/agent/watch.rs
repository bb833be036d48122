//! Watching the rules and egress policy files, so an edit is put in force without a SIGHUP.
//!
//! Parent directories are watched rather than the files themselves: editors and configuration
//! tools replace a file (write a new one, rename it over the old), which ends a watch on the
//! file but shows in its directory. Kubernetes ConfigMap volumes swap a `..data` symlink in the
//! directory; names starting with `..` count as a change of every watched file there.
//!
//! The watches use inotify directly, with a mask of the events that change a file (see
//! [`WATCH_MASK`]): a directory such as /etc sees reads all the time, and those must not wake
//! the agent.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{Notify, mpsc},
    task::JoinHandle,
};

/// What each directory is watched for: every way a file there gets new contents (a completed
/// write), appears, disappears or is replaced (created, deleted, renamed in or out), and the end
/// of the directory itself. Deliberately not IN_OPEN, IN_ACCESS or IN_CLOSE_NOWRITE: every read
/// of any file in the directory would wake the agent, and with the configuration in /etc that
/// is every exec (the loader opens /etc/ld.so.cache). Not IN_MODIFY either (one per write of a
/// save; the IN_CLOSE_WRITE that ends it is enough, and comes once the file is complete), nor
/// IN_ATTRIB (touch and chmod leave the contents as they were).
const WATCH_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

/// Events about an entry of a watched directory that may change what is loaded from it.
const ENTRY_CHANGES: EventMask = EventMask::CLOSE_WRITE
    .union(EventMask::MOVED_TO)
    .union(EventMask::MOVED_FROM)
    .union(EventMask::CREATE)
    .union(EventMask::DELETE);

/// Events about a watched directory itself: it was deleted, moved away or unmounted, or its
/// watch ended (IN_IGNORED, which the kernel sends whatever the mask).
const DIRECTORY_GONE: EventMask = EventMask::DELETE_SELF
    .union(EventMask::MOVE_SELF)
    .union(EventMask::UNMOUNT)
    .union(EventMask::IGNORED);

/// Room for many events per read; one event needs at most its header and a 255-byte name.
const BUFFER_SIZE: usize = 16 * 1024;

/// How long the files must stay quiet before a change is reported: a save is often several
/// events (truncate, writes, close, rename), and reloading a half-written file would fail.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Which configuration changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// A rules file or directory.
    pub rules: bool,
    /// An egress policy file or directory.
    pub egress: bool,
    /// The configuration file.
    pub config: bool,
}

impl Changed {
    /// Every configuration: what is reported when events were lost.
    const ALL: Changed = Changed {
        rules: true,
        egress: true,
        config: true,
    };

    fn any(self) -> bool {
        self.rules || self.egress || self.config
    }

    fn merge(&mut self, other: Changed) {
        self.rules |= other.rules;
        self.egress |= other.egress;
        self.config |= other.config;
    }
}

/// A watched path: a file, or a directory whose `*.yaml`/`*.yml` files are loaded.
#[derive(Debug)]
enum Target {
    File(PathBuf),
    Dir(PathBuf),
}

impl Target {
    fn new(path: &Path) -> Target {
        // Absolute, so that it compares equal to the paths in the watcher's events.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if path.is_dir() {
            Target::Dir(path)
        } else {
            Target::File(path)
        }
    }

    /// The directory to watch for it.
    fn directory(&self) -> Option<&Path> {
        match self {
            Target::File(file) => file.parent(),
            Target::Dir(dir) => Some(dir),
        }
    }

    /// Whether a change of `path` may change what is loaded from this target.
    fn affected_by(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let swapped = name.starts_with("..");
        match self {
            Target::File(file) => path == file || (swapped && path.parent() == file.parent()),
            Target::Dir(dir) => {
                let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                path == dir || (path.parent() == Some(dir.as_path()) && (yaml || swapped))
            }
        }
    }
}

/// What is watched, and which configuration each path belongs to.
#[derive(Debug)]
struct Targets {
    rules: Vec<Target>,
    egress: Vec<Target>,
    config: Vec<Target>,
}

impl Targets {
    fn new(rules: &[PathBuf], egress: &[PathBuf], config: Option<&Path>) -> Targets {
        Targets {
            rules: rules.iter().map(|p| Target::new(p)).collect(),
            egress: egress.iter().map(|p| Target::new(p)).collect(),
            config: config.map(Target::new).into_iter().collect(),
        }
    }

    /// The directories to watch, each once.
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .rules
            .iter()
            .chain(&self.egress)
            .chain(&self.config)
            .filter_map(|t| t.directory().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// What an event of the watcher changed.
    fn classify(&self, event: &Event) -> Changed {
        if event.mask.contains(EventMask::Q_OVERFLOW) {
            // Events were lost (the kernel's queue overflowed): anything may have changed.
            return Changed::ALL;
        }
        let Some(path) = &event.path else {
            return Changed::default();
        };
        let affected: &dyn Fn(&Target) -> bool = if event.mask.intersects(DIRECTORY_GONE) {
            // Whatever was loaded from the directory is gone, or no longer watched.
            &|t: &Target| t.directory() == Some(path.as_path()) || t.affected_by(path)
        } else if event.mask.intersects(ENTRY_CHANGES) {
            &|t: &Target| t.affected_by(path)
        } else {
            // Reads, opens and metadata changes: outside the mask, so only if the kernel sends
            // them anyway; they change no contents.
            return Changed::default();
        };
        Changed {
            rules: self.rules.iter().any(affected),
            egress: self.egress.iter().any(affected),
            config: self.config.iter().any(affected),
        }
    }
}

/// An inotify event, its watch resolved to the path it is about.
#[derive(Debug)]
struct Event {
    /// What happened.
    mask: EventMask,
    /// The entry of a watched directory the event names, or the directory itself for events
    /// about it; `None` for a queue overflow, which belongs to no watch.
    path: Option<PathBuf>,
}

/// Changes seen and not yet reported, and a wake-up for the debouncer.
#[derive(Default)]
struct Pending {
    changed: Mutex<Changed>,
    wake: Notify,
}

impl Pending {
    fn add(&self, changed: Changed) {
        if !changed.any() {
            return;
        }
        self.changed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .merge(changed);
        self.wake.notify_one();
    }

    fn take(&self) -> Changed {
        std::mem::take(
            &mut *self
                .changed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Reports debounced changes of the rules, egress policy and configuration files. Dropping it
/// stops watching.
pub struct ConfigWatcher {
    changes: mpsc::Receiver<Changed>,
    /// Owns the inotify instance: aborting it closes the descriptor, which ends the watches.
    reader: JoinHandle<()>,
    debouncer: JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.reader.abort();
        self.debouncer.abort();
    }
}

impl ConfigWatcher {
    /// Starts watching the directories of `rules` and `egress` (files or directories) and of
    /// `config`. Fails only when no inotify instance can be had (the per-user limit reached);
    /// a directory that cannot be watched is logged and left to SIGHUP. Must run inside a
    /// tokio runtime.
    pub fn start(
        rules: &[PathBuf],
        egress: &[PathBuf],
        config: Option<&Path>,
    ) -> io::Result<ConfigWatcher> {
        let targets = Targets::new(rules, egress, config);
        let inotify = Inotify::init()?;
        // Two spellings of one directory (a symlink, `..`) share a watch: each gets the events.
        let mut watched: HashMap<WatchDescriptor, Vec<PathBuf>> = HashMap::new();
        for dir in targets.directories() {
            // One directory that cannot be watched (gone, or too many watches) leaves the
            // others watched; its files still reload on SIGHUP.
            match inotify.watches().add(&dir, WATCH_MASK) {
                Ok(wd) => {
                    tracing::debug!(dir = %dir.display(), "watching for configuration changes");
                    watched.entry(wd).or_default().push(dir);
                }
                Err(error) => tracing::warn!(
                    dir = %dir.display(),
                    %error,
                    "cannot watch for configuration changes: changes there need a SIGHUP"
                ),
            }
        }
        // The descriptor is non-blocking (inotify_init1 with IN_NONBLOCK): tokio's reactor
        // says when events are there, and no thread waits on it.
        // SAFETY: the Inotify owns its descriptor and closes it only when the last handle to it
        // is dropped; the AsyncFd owns the Inotify, so the descriptor stays open and the same
        // until the AsyncFd is dropped.
        let inotify = unsafe { AsyncFd::register_with_interest(inotify, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let pending = Arc::new(Pending::default());
        let reader = tokio::spawn(read(inotify, watched, targets, Arc::clone(&pending)));
        let (tx, changes) = mpsc::channel(1);
        // Its own task: the event loop drops and re-creates its futures at every event, which
        // would restart a quiet period kept there.
        let debouncer = tokio::spawn(debounce(pending, tx));
        Ok(ConfigWatcher {
            changes,
            reader,
            debouncer,
        })
    }

    /// The next change, once the files have been quiet for [`DEBOUNCE`]. Cancel-safe.
    pub async fn next(&mut self) -> Option<Changed> {
        self.changes.recv().await
    }
}

/// Reads the watches' events until aborted, and adds what they changed to `pending`.
async fn read(
    mut inotify: AsyncFd<Inotify>,
    mut watched: HashMap<WatchDescriptor, Vec<PathBuf>>,
    targets: Targets,
    pending: Arc<Pending>,
) {
    let mut buffer = vec![0; BUFFER_SIZE];
    loop {
        let mut ready = match inotify.readable_mut().await {
            Ok(ready) => ready,
            Err(error) => {
                tracing::warn!(%error, "watching the configuration files failed: changes need a SIGHUP");
                return;
            }
        };
        let events = match ready.get_inner_mut().read_events(&mut buffer) {
            Ok(events) => events,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                // All read: wait for the reactor to say there are more.
                ready.clear_ready();
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // Events may have been lost before the failure.
                tracing::warn!(%error, "reading configuration file changes failed: checking them all; further changes need a SIGHUP");
                pending.add(Changed::ALL);
                return;
            }
        };
        drop(ready);
        // Watches of directories moved away: they would report another path's files as ours.
        let mut moved = Vec::new();
        for event in events {
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                tracing::warn!("configuration change events were lost: checking every file");
                pending.add(targets.classify(&Event {
                    mask: event.mask,
                    path: None,
                }));
                continue;
            }
            // A late event of a watch already ended.
            let Some(dirs) = watched.get(&event.wd) else {
                continue;
            };
            for dir in dirs {
                let path = match event.name {
                    Some(name) => dir.join(name),
                    None => dir.clone(),
                };
                tracing::trace!(path = %path.display(), mask = ?event.mask, "configuration directory event");
                pending.add(targets.classify(&Event {
                    mask: event.mask,
                    path: Some(path),
                }));
            }
            if event.mask.contains(EventMask::MOVE_SELF) {
                moved.push(event.wd.clone());
            }
            if event.mask.contains(EventMask::IGNORED) {
                // The kernel ended the watch (the directory was deleted or unmounted, or we
                // removed the watch after a move); the other directories stay watched.
                for dir in watched.remove(&event.wd).unwrap_or_default() {
                    tracing::warn!(
                        dir = %dir.display(),
                        "configuration directory deleted, moved or unmounted: changes there need a SIGHUP"
                    );
                }
            }
        }
        for wd in moved {
            // Its IN_IGNORED comes with the next read, and drops it from `watched`.
            if let Err(error) = inotify.get_ref().watches().remove(wd) {
                tracing::debug!(%error, "cannot remove the watch of a moved directory");
            }
        }
    }
}

async fn debounce(pending: Arc<Pending>, changes: mpsc::Sender<Changed>) {
    loop {
        pending.wake.notified().await;
        // Each new event starts the quiet period again.
        loop {
            tokio::select! {
                () = tokio::time::sleep(DEBOUNCE) => break,
                () = pending.wake.notified() => {}
            }
        }
        let changed = pending.take();
        if changed.any() && changes.send(changed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(mask: EventMask, path: &Path) -> Event {
        Event {
            mask,
            path: Some(path.to_path_buf()),
        }
    }

    #[test]
    fn classifies_changes_by_the_configuration_they_touch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules_dir = dir.path().join("rules.d");
        std::fs::create_dir(&rules_dir).expect("rules dir");
        let egress = dir.path().join("egress.yaml");
        let config = dir.path().join("vigil.yaml");
        let targets = Targets::new(
            std::slice::from_ref(&rules_dir),
            std::slice::from_ref(&egress),
            Some(&config),
        );
        let write = EventMask::CLOSE_WRITE;
        let changed = |mask, path: &Path| targets.classify(&event(mask, path));

        assert_eq!(
            changed(write, &rules_dir.join("a.yaml")),
            Changed {
                rules: true,
                egress: false,
                config: false
            }
        );
        assert_eq!(
            changed(EventMask::CREATE, &egress),
            Changed {
                rules: false,
                egress: true,
                config: false
            }
        );
        assert_eq!(
            changed(write, &config),
            Changed {
                rules: false,
                egress: false,
                config: true
            }
        );
        assert!(changed(EventMask::DELETE, &egress).egress);
        // Editor leftovers, other files and the agent's own reads change nothing.
        assert!(!changed(write, &rules_dir.join(".a.yaml.swp")).any());
        assert!(!changed(write, &dir.path().join("other.yaml")).any());
        for mask in [
            EventMask::OPEN,
            EventMask::ACCESS,
            EventMask::CLOSE_NOWRITE,
            EventMask::MODIFY,
            EventMask::ATTRIB,
        ] {
            assert!(!changed(mask, &egress).any(), "{mask:?}");
            assert_eq!(WATCH_MASK.bits() & mask.bits(), 0, "{mask:?} is watched");
        }
        // A file renamed over a watched one, or away from it, and a ConfigMap's symlink swap.
        assert!(changed(EventMask::MOVED_TO, &rules_dir.join("b.yml")).rules);
        assert!(changed(EventMask::MOVED_FROM, &rules_dir.join("b.yml")).rules);
        let swap = changed(EventMask::MOVED_TO, &dir.path().join("..data"));
        assert!(swap.egress && !swap.rules, "{swap:?}");
        assert!(changed(write, &rules_dir.join("..data")).rules);
        // A watched directory gone: whatever was loaded from it.
        assert_eq!(
            changed(EventMask::DELETE_SELF, &rules_dir),
            Changed {
                rules: true,
                egress: false,
                config: false
            }
        );
        assert_eq!(
            changed(EventMask::MOVE_SELF, dir.path()),
            Changed {
                rules: false,
                egress: true,
                config: true
            }
        );
        // Lost events: everything is checked.
        let overflow = Event {
            mask: EventMask::Q_OVERFLOW,
            path: None,
        };
        assert_eq!(targets.classify(&overflow), Changed::ALL);
        assert_eq!(targets.directories(), [dir.path().to_path_buf(), rules_dir]);
    }

    #[tokio::test]
    async fn reports_one_change_after_a_burst_of_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, "- list: a\n  items: []\n").expect("rules");
        let mut watcher =
            ConfigWatcher::start(std::slice::from_ref(&rules), &[], None).expect("watch");
        // Reading the file (as a reload does) is no change.
        let _ = std::fs::read(&rules).expect("read");
        for n in 0..5 {
            std::fs::write(&rules, format!("- list: a\n  items: [{n}]\n")).expect("write");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // An unrelated file in the same directory.
        std::fs::write(dir.path().join("notes.txt"), "x").expect("other file");
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("a change is reported")
            .expect("watcher running");
        assert_eq!(
            changed,
            Changed {
                rules: true,
                egress: false,
                config: false
            }
        );
        // The burst was one change.
        let again = tokio::time::timeout(DEBOUNCE * 3, watcher.next()).await;
        assert!(again.is_err(), "{again:?}");
        // A rename over the file (how editors save) is seen too.
        let staged = dir.path().join("rules.yaml.tmp");
        std::fs::write(&staged, "- list: b\n  items: []\n").expect("staged");
        std::fs::rename(&staged, &rules).expect("rename");
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("the rename is reported");
        assert_eq!(changed.map(|c| c.rules), Some(true));
    }

    /// Reads (opens, reads and closes) each of `files`, `times` times.
    fn read_all(files: &[&Path], times: usize) {
        for _ in 0..times {
            for file in files {
                let _ = std::fs::read(file).expect("read");
            }
        }
    }

    #[tokio::test]
    async fn reads_in_a_watched_directory_wake_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("vigil.yaml");
        let neighbour = dir.path().join("ld.so.cache");
        std::fs::write(&config, "rules: []\n").expect("config");
        std::fs::write(&neighbour, "x").expect("neighbour");
        let files = [config.as_path(), neighbour.as_path()];

        // At the inotify level: with the watch's mask, opens and reads queue no event at all.
        let mut inotify = Inotify::init().expect("inotify");
        inotify
            .watches()
            .add(dir.path(), WATCH_MASK)
            .expect("watch");
        let mut buffer = vec![0; BUFFER_SIZE];
        read_all(&files, 100);
        match inotify.read_events(&mut buffer) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Ok(events) => panic!("reads queued events: {:?}", events.collect::<Vec<_>>()),
            Err(error) => panic!("reading events: {error}"),
        }
        std::fs::write(&config, "rules: [a]\n").expect("write");
        let events: Vec<_> = inotify
            .read_events(&mut buffer)
            .expect("the write queued an event")
            .map(|e| e.to_owned())
            .collect();
        assert!(
            events
                .iter()
                .any(|e| e.mask.contains(EventMask::CLOSE_WRITE)
                    && e.name.as_deref() == Some(std::ffi::OsStr::new("vigil.yaml"))),
            "{events:?}"
        );

        // And through the watcher: nothing is reported until the file really changes.
        let mut watcher = ConfigWatcher::start(&[], &[], Some(&config)).expect("watch");
        read_all(&files, 100);
        let quiet = tokio::time::timeout(DEBOUNCE * 3, watcher.next()).await;
        assert!(quiet.is_err(), "{quiet:?}");
        std::fs::write(&config, "rules: [b]\n").expect("write");
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("the write is reported");
        assert_eq!(
            changed,
            Some(Changed {
                rules: false,
                egress: false,
                config: true
            })
        );
    }

    #[tokio::test]
    async fn a_deleted_directory_is_reported_and_the_others_stay_watched() {
        // Apart: the deletion must show through the rules directory's own watch, not as an
        // entry of a watched parent.
        let rules_parent = tempfile::tempdir().expect("temp dir");
        let egress_dir = tempfile::tempdir().expect("temp dir");
        let rules_dir = rules_parent.path().join("rules.d");
        std::fs::create_dir(&rules_dir).expect("rules dir");
        let egress = egress_dir.path().join("egress.yaml");
        let mut watcher = ConfigWatcher::start(
            std::slice::from_ref(&rules_dir),
            std::slice::from_ref(&egress),
            None,
        )
        .expect("watch");
        std::fs::remove_dir(&rules_dir).expect("remove rules dir");
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("the deletion is reported");
        assert_eq!(changed.map(|c| c.rules), Some(true));
        std::fs::write(&egress, "rules: []\n").expect("egress");
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("the other directory is still watched");
        assert_eq!(
            changed,
            Some(Changed {
                rules: false,
                egress: true,
                config: false
            })
        );
    }

    #[tokio::test]
    async fn dropping_the_watcher_ends_its_tasks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules = dir.path().join("rules.yaml");
        let watcher = ConfigWatcher::start(std::slice::from_ref(&rules), &[], None).expect("watch");
        let reader = watcher.reader.abort_handle();
        let debouncer = watcher.debouncer.abort_handle();
        drop(watcher);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !(reader.is_finished() && debouncer.is_finished()) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the tasks end");
    }
}
