//! Cached uid/gid to name lookups.
//!
//! Lookups go through NSS (`getpwuid_r`/`getgrgid_r`), which may read files
//! or ask a network directory; either way it is far too slow to do per event.
//! Both hits and misses are cached (events from an unnamed uid are common in
//! containers), and the caches are dropped when `/etc/passwd` or `/etc/group`
//! changes. Change detection itself is throttled to one `stat` per file per
//! second.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User};

use crate::clock::coarse_monotonic;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// How often the database files are checked for changes.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Bound on each cache; uids seen in events are attacker-influenced (any
/// process with CAP_SETUID can cycle through them).
const MAX_ENTRIES: usize = 65_536;

/// What is cached about a user.
#[derive(Clone, Debug)]
struct UserInfo {
    name: Arc<str>,
    home: Arc<str>,
}

/// Identity of a file's contents, cheap to obtain with one `stat`.
///
/// The inode is included because tools like `useradd` replace the file by
/// renaming a new one over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
    len: u64,
}

impl FileStamp {
    /// Stamps `path`; a missing or unreadable file is `None`, which still
    /// compares unequal to any real stamp when the file (re)appears.
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ino: meta.ino(),
            len: meta.len(),
        })
    }
}

/// A database file whose changes invalidate a cache.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    stamp: Option<FileStamp>,
}

impl Watched {
    fn new(path: PathBuf) -> Self {
        let stamp = FileStamp::of(&path);
        Self { path, stamp }
    }

    /// Re-stamps the file, returning whether it changed.
    fn changed(&mut self) -> bool {
        let now = FileStamp::of(&self.path);
        let changed = now != self.stamp;
        self.stamp = now;
        changed
    }
}

/// Cached user and group name database.
#[derive(Debug)]
pub struct UserDb {
    users: HashMap<u32, Option<UserInfo>>,
    groups: HashMap<u32, Option<Arc<str>>>,
    passwd: Watched,
    group: Watched,
    /// When the files were last checked, on [`coarse_monotonic`]'s clock.
    last_check: Duration,
    check_interval: Duration,
    /// NSS lookups performed, so tests can tell cache hits from misses.
    lookups: u64,
}

impl Default for UserDb {
    fn default() -> Self {
        Self::new()
    }
}

impl UserDb {
    /// Creates an empty database watching `/etc/passwd` and `/etc/group`.
    pub fn new() -> Self {
        Self::watching(PathBuf::from(PASSWD), PathBuf::from(GROUP), CHECK_INTERVAL)
    }

    fn watching(passwd: PathBuf, group: PathBuf, check_interval: Duration) -> Self {
        Self {
            users: HashMap::new(),
            groups: HashMap::new(),
            passwd: Watched::new(passwd),
            group: Watched::new(group),
            last_check: coarse_monotonic(),
            check_interval,
            lookups: 0,
        }
    }

    /// The login name of `uid`, or `None` if NSS does not know it.
    pub fn user_name(&mut self, uid: u32) -> Option<Arc<str>> {
        self.user(uid).map(|u| Arc::clone(&u.name))
    }

    /// The home directory of `uid`, or `None` if NSS does not know it.
    pub fn home_dir(&mut self, uid: u32) -> Option<Arc<str>> {
        self.user(uid).map(|u| Arc::clone(&u.home))
    }

    /// The name of group `gid`, or `None` if NSS does not know it.
    pub fn group_name(&mut self, gid: u32) -> Option<Arc<str>> {
        self.revalidate();
        if let Some(cached) = self.groups.get(&gid) {
            return cached.clone();
        }
        self.lookups += 1;
        let found = match Group::from_gid(Gid::from_raw(gid)) {
            Ok(group) => group.map(|g| Arc::<str>::from(g.name)),
            // Cached like a miss: retrying a failing NSS backend per event
            // would stall the pipeline; the next file change retries.
            Err(errno) => {
                tracing::debug!(gid, %errno, "group lookup failed");
                None
            }
        };
        if self.groups.len() >= MAX_ENTRIES {
            self.groups.clear();
        }
        self.groups.insert(gid, found.clone());
        found
    }

    fn user(&mut self, uid: u32) -> Option<&UserInfo> {
        self.revalidate();
        if !self.users.contains_key(&uid) {
            self.lookups += 1;
            let found = match User::from_uid(Uid::from_raw(uid)) {
                Ok(user) => user.map(|u| UserInfo {
                    name: Arc::from(u.name),
                    home: Arc::from(u.dir.to_string_lossy()),
                }),
                // See group_name for why failures are cached.
                Err(errno) => {
                    tracing::debug!(uid, %errno, "user lookup failed");
                    None
                }
            };
            if self.users.len() >= MAX_ENTRIES {
                self.users.clear();
            }
            self.users.insert(uid, found);
        }
        self.users.get(&uid).and_then(Option::as_ref)
    }

    /// Drops caches whose database file changed, checking at most once per
    /// interval.
    fn revalidate(&mut self) {
        // Per lookup, so per event: a precise clock read here cost more than the lookup.
        let now = coarse_monotonic();
        if now.saturating_sub(self.last_check) < self.check_interval {
            return;
        }
        self.last_check = now;
        if self.passwd.changed() {
            self.users.clear();
        }
        if self.group.changed() {
            self.groups.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::time::SystemTime;

    /// An unassigned uid/gid on any sane system.
    const NOBODY_KNOWS: u32 = 3_999_999_999;

    #[test]
    fn root_names() {
        let mut db = UserDb::new();
        assert_eq!(db.user_name(0).as_deref(), Some("root"));
        assert_eq!(db.group_name(0).as_deref(), Some("root"));
        assert_eq!(db.home_dir(0).as_deref(), Some("/root"));
        assert_eq!(db.lookups, 2, "user name and home share one lookup");
    }

    #[test]
    fn misses_are_cached() {
        let mut db = UserDb::new();
        assert_eq!(db.user_name(NOBODY_KNOWS), None);
        assert_eq!(db.home_dir(NOBODY_KNOWS), None);
        assert_eq!(db.group_name(NOBODY_KNOWS), None);
        assert_eq!(db.group_name(NOBODY_KNOWS), None);
        assert_eq!(db.lookups, 2);
        assert!(matches!(db.users.get(&NOBODY_KNOWS), Some(None)));
        assert!(matches!(db.groups.get(&NOBODY_KNOWS), Some(None)));
    }

    struct Files {
        _dir: tempfile::TempDir,
        passwd: PathBuf,
        group: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(&group, "root:x:0:\n").unwrap();
        Files {
            _dir: dir,
            passwd,
            group,
        }
    }

    fn touch(path: &Path, secs_ago: u64) {
        let when = SystemTime::now() - Duration::from_secs(secs_ago);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn file_change_invalidates_only_its_cache() {
        let f = files();
        let mut db = UserDb::watching(f.passwd.clone(), f.group.clone(), Duration::ZERO);
        db.user_name(0);
        db.group_name(0);
        db.user_name(0);
        db.group_name(0);
        assert_eq!(db.lookups, 2);

        touch(&f.passwd, 3600);
        db.group_name(0);
        assert_eq!(db.lookups, 2, "group cache survives a passwd change");
        db.user_name(0);
        assert_eq!(db.lookups, 3, "user cache was dropped");

        touch(&f.group, 7200);
        db.user_name(0);
        db.group_name(0);
        assert_eq!(db.lookups, 4);
    }

    #[test]
    fn replaced_or_removed_file_invalidates() {
        let f = files();
        let mut db = UserDb::watching(f.passwd.clone(), f.group.clone(), Duration::ZERO);
        db.user_name(0);
        fs::remove_file(&f.passwd).unwrap();
        db.user_name(0);
        assert_eq!(db.lookups, 2, "disappearing file");
        fs::write(&f.passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
        db.user_name(0);
        assert_eq!(db.lookups, 3, "reappearing file");
    }

    #[test]
    fn checks_are_throttled() {
        let f = files();
        let mut db = UserDb::watching(f.passwd.clone(), f.group.clone(), Duration::from_secs(3600));
        db.user_name(0);
        touch(&f.passwd, 3600);
        db.user_name(0);
        assert_eq!(db.lookups, 1, "no stat within the interval");
    }

    #[test]
    fn cache_is_bounded() {
        let mut db = UserDb::new();
        for gid in 0..(MAX_ENTRIES as u32 + 10) {
            db.groups.insert(NOBODY_KNOWS - gid, None);
            if db.groups.len() >= MAX_ENTRIES {
                break;
            }
        }
        db.group_name(0);
        assert_eq!(
            db.groups.len(),
            1,
            "a full cache is dropped before inserting"
        );
    }
}
