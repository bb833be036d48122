//! Mapping cgroup v2 ids to cgroup paths.
//!
//! Kernel events carry `bpf_get_current_cgroup_id()`, which on cgroup v2 is
//! the inode number of the cgroup's directory under the cgroup2 mount. The
//! path (needed for container detection) is found by walking the mount and
//! stat'ing directories, which is far too expensive per event, so results are
//! cached and rescans are rate-limited.
//!
//! Cgroup inode numbers are not reused while the system is up (kernfs
//! allocates them cyclically with a generation), so a cached mapping stays
//! correct after the cgroup is removed; keeping it lets late events from a
//! container that just exited still resolve.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default bound on cached id → path entries.
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

/// Default minimum time between two tree walks, whatever id triggered them.
pub const DEFAULT_MIN_RESCAN_INTERVAL: Duration = Duration::from_millis(100);

/// Default time an id stays "known missing" after a walk did not find it.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// Resolves cgroup ids to paths relative to the cgroup2 mount.
#[derive(Debug)]
pub struct CgroupResolver {
    mount: PathBuf,
    paths: HashMap<u64, Arc<str>>,
    /// Ids a walk failed to find, with when. Without this a stream of events
    /// from one dead cgroup would trigger a walk per interval forever.
    misses: HashMap<u64, Instant>,
    last_scan: Option<Instant>,
    min_rescan_interval: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    scans: u64,
}

impl CgroupResolver {
    /// Creates a resolver for the cgroup2 filesystem mounted at `mount`, with
    /// default limits. No I/O happens until the first lookup.
    pub fn new(mount: PathBuf) -> Self {
        Self::with_limits(
            mount,
            DEFAULT_MIN_RESCAN_INTERVAL,
            DEFAULT_NEGATIVE_TTL,
            DEFAULT_MAX_ENTRIES,
        )
    }

    /// Creates a resolver with explicit rate limits and cache bound.
    ///
    /// `min_rescan_interval` spaces out walks globally; `negative_ttl` is how
    /// long an id not found by a walk is answered with `None` without walking
    /// again; `max_entries` bounds each of the two caches.
    pub fn with_limits(
        mount: PathBuf,
        min_rescan_interval: Duration,
        negative_ttl: Duration,
        max_entries: usize,
    ) -> Self {
        Self {
            mount,
            paths: HashMap::new(),
            misses: HashMap::new(),
            last_scan: None,
            min_rescan_interval,
            negative_ttl,
            max_entries: max_entries.max(1),
            scans: 0,
        }
    }

    /// Returns the path of cgroup `id` relative to the mount, starting with
    /// "/" (the root cgroup is "/").
    ///
    /// A cache miss walks the cgroup tree unless a walk happened within the
    /// minimum interval or a recent walk already failed to find `id`; in
    /// those cases the answer is `None` without any I/O.
    pub fn resolve(&mut self, id: u64) -> Option<Arc<str>> {
        if let Some(path) = self.paths.get(&id) {
            return Some(Arc::clone(path));
        }
        let now = Instant::now();
        if self
            .misses
            .get(&id)
            .is_some_and(|&at| now.duration_since(at) < self.negative_ttl)
        {
            return None;
        }
        if self
            .last_scan
            .is_some_and(|at| now.duration_since(at) < self.min_rescan_interval)
        {
            return None;
        }
        let found = self.rescan(now, id);
        match &found {
            Some(path) => {
                self.misses.remove(&id);
                // The cache may have been full during the walk; the entry that
                // was asked for is worth keeping regardless.
                self.paths.insert(id, Arc::clone(path));
            }
            None => {
                if self.misses.len() >= self.max_entries {
                    self.misses.clear();
                }
                self.misses.insert(id, now);
            }
        }
        found
    }

    /// Returns the cgroup id (directory inode) of `relative_path` under the
    /// mount, or `None` if it does not exist or is not a directory.
    pub fn id_of(&self, relative_path: &str) -> Option<u64> {
        let relative = Path::new(relative_path.trim_start_matches('/'));
        // Paths come from /proc, which a process influences; never let one
        // escape the cgroup mount.
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return None;
        }
        let meta = std::fs::symlink_metadata(self.mount.join(relative)).ok()?;
        meta.is_dir().then(|| meta.ino())
    }

    /// Records that cgroup `id` has `path` (relative to the mount, starting
    /// with "/"), e.g. learned from `/proc/<pid>/cgroup`, so it resolves
    /// without a walk.
    pub fn insert(&mut self, id: u64, path: &str) {
        if self.paths.len() >= self.max_entries && !self.paths.contains_key(&id) {
            self.paths.clear();
        }
        self.paths.insert(id, Arc::from(path));
        self.misses.remove(&id);
    }

    /// Number of tree walks performed so far (for metrics).
    pub fn scan_count(&self) -> u64 {
        self.scans
    }

    /// Walks the whole tree, adding every cgroup to the cache (up to the
    /// bound), and returns the path of `wanted` if seen.
    fn rescan(&mut self, now: Instant, wanted: u64) -> Option<Arc<str>> {
        self.last_scan = Some(now);
        self.scans += 1;
        if self.paths.len() >= self.max_entries {
            self.paths.clear();
        }

        let root_ino = match std::fs::metadata(&self.mount) {
            Ok(meta) => meta.ino(),
            Err(e) => {
                tracing::warn!(mount = %self.mount.display(), error = %e, "cannot stat cgroup2 mount");
                return None;
            }
        };
        let mut found = None;
        let mut record = |paths: &mut HashMap<u64, Arc<str>>, ino: u64, rel: &str| {
            let path: Arc<str> = Arc::from(rel);
            if ino == wanted {
                found = Some(Arc::clone(&path));
            }
            if paths.len() < self.max_entries {
                paths.insert(ino, path);
            }
        };
        record(&mut self.paths, root_ino, "/");

        let mut stack = vec![(self.mount.clone(), String::from("/"))];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Cgroups are removed concurrently with the walk all the
                // time; a vanished subtree is not worth more than a debug.
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "skipping cgroup dir");
                    continue;
                }
            };
            for entry in entries.flatten() {
                // file_type() comes from readdir's d_type and never follows
                // symlinks; cgroup dirs hold dozens of control files, so
                // filtering before stat saves most syscalls.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let child_rel = if rel == "/" {
                    format!("/{name}")
                } else {
                    format!("{rel}/{name}")
                };
                record(&mut self.paths, meta.ino(), &child_rel);
                stack.push((entry.path(), child_rel));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn ino(path: &Path) -> u64 {
        fs::metadata(path).unwrap().ino()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "system.slice/docker-x.scope",
            "user.slice/a b",
            "kubepods/pod1/c1",
        ] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("system.slice/cgroup.procs"), "").unwrap();
        dir
    }

    fn fast(mount: &Path) -> CgroupResolver {
        CgroupResolver::with_limits(
            mount.to_path_buf(),
            Duration::ZERO,
            Duration::ZERO,
            DEFAULT_MAX_ENTRIES,
        )
    }

    #[test]
    fn resolves_every_directory_with_one_walk() {
        let t = tree();
        let mut r = fast(t.path());
        assert_eq!(r.resolve(ino(t.path())).as_deref(), Some("/"));
        for rel in [
            "/system.slice",
            "/system.slice/docker-x.scope",
            "/user.slice/a b",
            "/kubepods/pod1/c1",
        ] {
            let id = ino(&t.path().join(&rel[1..]));
            assert_eq!(r.resolve(id).as_deref(), Some(rel));
            assert_eq!(r.id_of(rel), Some(id));
        }
        assert_eq!(r.scan_count(), 1, "later lookups are cache hits");
        let file = ino(&t.path().join("system.slice/cgroup.procs"));
        assert_eq!(r.resolve(file), None, "files are not cgroups");
    }

    #[test]
    fn new_directory_found_after_rate_limit_window() {
        let t = tree();
        // Wide enough that a loaded CI machine cannot outrun it by accident.
        let window = Duration::from_millis(250);
        let mut r = CgroupResolver::with_limits(t.path().to_path_buf(), window, window, 1000);
        assert!(r.resolve(ino(t.path())).is_some());
        fs::create_dir(t.path().join("late")).unwrap();
        let late = ino(&t.path().join("late"));
        assert_eq!(r.resolve(late), None, "inside the window no walk happens");
        assert_eq!(r.scan_count(), 1);
        std::thread::sleep(window + Duration::from_millis(20));
        assert_eq!(r.resolve(late).as_deref(), Some("/late"));
        assert_eq!(r.scan_count(), 2);
    }

    #[test]
    fn dead_cgroup_stream_does_not_rescan() {
        let t = tree();
        let mut r = CgroupResolver::with_limits(
            t.path().to_path_buf(),
            Duration::ZERO,
            Duration::from_secs(60),
            1000,
        );
        let dead = u64::MAX - 7;
        for _ in 0..100 {
            assert_eq!(r.resolve(dead), None);
        }
        assert_eq!(r.scan_count(), 1);
        // A different unknown id still gets its own walk.
        assert_eq!(r.resolve(dead - 1), None);
        assert_eq!(r.scan_count(), 2);
    }

    #[test]
    fn global_interval_limits_walks_across_ids() {
        let t = tree();
        let mut r = CgroupResolver::with_limits(
            t.path().to_path_buf(),
            Duration::from_secs(60),
            Duration::ZERO,
            1000,
        );
        for id in 0..50 {
            assert_eq!(r.resolve(u64::MAX - id), None);
        }
        assert_eq!(r.scan_count(), 1);
    }

    #[test]
    fn removed_cgroup_stays_resolvable() {
        let t = tree();
        let mut r = fast(t.path());
        let c1 = t.path().join("kubepods/pod1/c1");
        let id = ino(&c1);
        assert!(r.resolve(id).is_some());
        fs::remove_dir(&c1).unwrap();
        assert_eq!(r.resolve(id).as_deref(), Some("/kubepods/pod1/c1"));
        assert_eq!(r.id_of("/kubepods/pod1/c1"), None);
    }

    #[test]
    fn cache_is_bounded() {
        let t = tree();
        let max = 3;
        let mut r = CgroupResolver::with_limits(
            t.path().to_path_buf(),
            Duration::ZERO,
            Duration::ZERO,
            max,
        );
        let rels = [
            "system.slice",
            "user.slice/a b",
            "kubepods/pod1/c1",
            "kubepods",
            "user.slice",
        ];
        for rel in rels {
            let id = ino(&t.path().join(rel));
            assert_eq!(r.resolve(id).as_deref(), Some(format!("/{rel}").as_str()));
            assert!(r.paths.len() <= max + 1, "cache grew to {}", r.paths.len());
        }
        for id in 0..10 {
            r.resolve(u64::MAX - id);
            assert!(r.misses.len() <= max);
        }
        for id in 0..10 {
            r.insert(1_000_000 + id, "/primed");
            assert!(r.paths.len() <= max);
        }
    }

    #[test]
    fn symlinks_are_not_followed() {
        let t = tree();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(outside.path().join("secret")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        let mut r = fast(t.path());
        assert_eq!(r.resolve(ino(outside.path())), None);
        assert_eq!(r.resolve(ino(&outside.path().join("secret"))), None);
        assert_eq!(r.id_of("/link"), None);
    }

    #[test]
    fn insert_primes_without_walk() {
        let t = tree();
        let mut r = fast(t.path());
        r.insert(424242, "/from/proc");
        assert_eq!(r.resolve(424242).as_deref(), Some("/from/proc"));
        assert_eq!(r.scan_count(), 0);
    }

    #[test]
    fn id_of_rejects_escapes_and_non_dirs() {
        let t = tree();
        let r = fast(&t.path().join("user.slice"));
        assert_eq!(r.id_of("/"), Some(ino(&t.path().join("user.slice"))));
        assert_eq!(r.id_of(""), Some(ino(&t.path().join("user.slice"))));
        assert_eq!(r.id_of("/a b"), Some(ino(&t.path().join("user.slice/a b"))));
        assert_eq!(r.id_of("/../system.slice"), None);
        assert_eq!(r.id_of("/a b/../../kubepods"), None);
        assert_eq!(r.id_of("/missing"), None);
        let rr = fast(t.path());
        assert_eq!(rr.id_of("/system.slice/cgroup.procs"), None);
    }

    #[test]
    fn missing_mount_resolves_nothing() {
        let mut r = fast(Path::new("/nonexistent/vigil/cgroup"));
        assert_eq!(r.resolve(1), None);
        assert_eq!(r.scan_count(), 1);
    }

    /// Our own cgroup from /proc/self/cgroup.
    fn own_cgroup() -> String {
        let text = fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        path.trim_end_matches(" (deleted)").to_owned()
    }

    #[test]
    fn real_cgroup2_mount() {
        let mount = crate::host::mounts::cgroup2_mount().unwrap();
        let mut r = CgroupResolver::new(mount.clone());
        let own = own_cgroup();
        let id = r.id_of(&own).unwrap();
        assert_eq!(r.resolve(id).as_deref(), Some(own.as_str()));

        // Creating a child cgroup needs root and a writable hierarchy; where
        // that is not possible the lookup above is the whole test.
        let name = format!("vigil-test-{}", std::process::id());
        let child = mount.join(own.trim_start_matches('/')).join(&name);
        if fs::create_dir(&child).is_ok() {
            let child_id = ino(&child);
            std::thread::sleep(DEFAULT_MIN_RESCAN_INTERVAL);
            let got = r.resolve(child_id);
            let rel = format!("{}/{name}", own.trim_end_matches('/'));
            fs::remove_dir(&child).unwrap();
            assert_eq!(got.as_deref(), Some(rel.as_str()));
            assert_eq!(r.id_of(&rel), None, "removed");
        }
    }
}
