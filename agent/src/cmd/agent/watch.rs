//! Watching the rules and egress policy files, so an edit is put in force without a SIGHUP.
//!
//! Parent directories are watched rather than the files themselves: editors and configuration
//! tools replace a file (write a new one, rename it over the old), which ends a watch on the
//! file but shows in its directory. Kubernetes ConfigMap volumes swap a `..data` symlink in the
//! directory; names starting with `..` count as a change of every watched file there.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use notify::{
    EventKind, RecommendedWatcher, RecursiveMode, Watcher as _,
    event::{AccessKind, AccessMode, ModifyKind},
};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
};

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
    fn classify(&self, event: &notify::Event) -> Changed {
        if event.need_rescan() {
            // Events were lost (the kernel's queue overflowed): anything may have changed.
            return Changed {
                rules: true,
                egress: true,
                config: true,
            };
        }
        let relevant = match event.kind {
            // Opening and reading (the agent's own loads among them) change nothing.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            // touch and chmod: the contents are the same.
            EventKind::Modify(ModifyKind::Metadata(_)) => false,
            _ => true,
        };
        let mut changed = Changed::default();
        if !relevant {
            return changed;
        }
        for path in &event.paths {
            changed.rules |= self.rules.iter().any(|t| t.affected_by(path));
            changed.egress |= self.egress.iter().any(|t| t.affected_by(path));
            changed.config |= self.config.iter().any(|t| t.affected_by(path));
        }
        changed
    }
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

/// Reports debounced changes of the rules and egress policy files. Dropping it stops watching.
pub struct ConfigWatcher {
    // Kept only to keep the watch alive.
    _watcher: RecommendedWatcher,
    changes: mpsc::Receiver<Changed>,
    debouncer: JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.debouncer.abort();
    }
}

impl ConfigWatcher {
    /// Starts watching the directories of `rules` and `egress` (files or directories). Must
    /// run inside a tokio runtime.
    pub fn start(
        rules: &[PathBuf],
        egress: &[PathBuf],
        config: Option<&Path>,
    ) -> notify::Result<ConfigWatcher> {
        let targets = Targets::new(rules, egress, config);
        let directories = targets.directories();
        let pending = Arc::new(Pending::default());
        let sink = Arc::clone(&pending);
        let mut watcher = notify::recommended_watcher(
            move |event: notify::Result<notify::Event>| match event {
                Ok(event) => sink.add(targets.classify(&event)),
                Err(error) => {
                    tracing::warn!(%error, "watching the configuration files failed; checking them all");
                    sink.add(Changed {
                        rules: true,
                        egress: true,
                        config: true,
                    });
                }
            },
        )?;
        for dir in &directories {
            // One directory that cannot be watched (gone, or too many watches) leaves the
            // others watched; its files still reload on SIGHUP.
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), "watching for configuration changes")
                }
                Err(error) => tracing::warn!(
                    dir = %dir.display(),
                    %error,
                    "cannot watch for configuration changes: changes there need a SIGHUP"
                ),
            }
        }
        let (tx, changes) = mpsc::channel(1);
        // Its own task: the event loop drops and re-creates its futures at every event, which
        // would restart a quiet period kept there.
        let debouncer = tokio::spawn(debounce(pending, tx));
        Ok(ConfigWatcher {
            _watcher: watcher,
            changes,
            debouncer,
        })
    }

    /// The next change, once the files have been quiet for [`DEBOUNCE`]. Cancel-safe.
    pub async fn next(&mut self) -> Option<Changed> {
        self.changes.recv().await
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

    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    fn event(kind: EventKind, path: &Path) -> notify::Event {
        notify::Event::new(kind).add_path(path.to_path_buf())
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
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let changed = |kind, path: &Path| targets.classify(&event(kind, path));

        assert_eq!(
            changed(write, &rules_dir.join("a.yaml")),
            Changed {
                rules: true,
                egress: false,
                config: false
            }
        );
        assert_eq!(
            changed(EventKind::Create(CreateKind::File), &egress),
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
        // Editor leftovers, other files and the agent's own reads change nothing.
        assert!(!changed(write, &rules_dir.join(".a.yaml.swp")).any());
        assert!(!changed(write, &dir.path().join("other.yaml")).any());
        assert!(
            !changed(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &egress
            )
            .any()
        );
        assert!(
            !changed(
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
                &egress
            )
            .any()
        );
        assert!(
            changed(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &egress
            )
            .egress
        );
        // A file renamed over a watched one, and a ConfigMap's symlink swap.
        assert!(
            changed(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                &rules_dir.join("b.yml")
            )
            .rules
        );
        let swap = changed(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            &dir.path().join("..data"),
        );
        assert!(swap.egress && !swap.rules, "{swap:?}");
        assert!(changed(write, &rules_dir.join("..data")).rules);
        // Lost events: everything is checked.
        let rescan = event(write, &dir.path().join("x")).set_flag(notify::event::Flag::Rescan);
        assert_eq!(
            targets.classify(&rescan),
            Changed {
                rules: true,
                egress: true,
                config: true
            }
        );
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
}
