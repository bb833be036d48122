//! Locating (and if needed mounting) the pseudo-filesystems the agent needs:
//! cgroup2 for mapping cgroup ids to paths, tracefs for tracepoint ids.
//!
//! Mount points differ between hosts (hybrid cgroup hosts put cgroup2 at
//! `/sys/fs/cgroup/unified`, older kernels expose tracefs only under
//! debugfs), so locations are always read from `/proc/self/mounts`, never
//! assumed.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

/// The mount table of the agent's mount namespace.
const PROC_MOUNTS: &str = "/proc/self/mounts";

/// Where cgroup2 lives on unified (non-hybrid) hosts.
const CGROUP2_CANONICAL: &str = "/sys/fs/cgroup";

/// Errors from locating or mounting a filesystem.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount table could not be read.
    #[error("cannot read the mount table {path}: {source}")]
    ReadMounts {
        /// The mount table file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The mount point for a missing filesystem could not be created.
    #[error(
        "{fstype} is not mounted and creating the mount point {target} failed: {source}; \
         mount {fstype} on the host and expose it to the agent (hostPath {target})"
    )]
    CreateMountPoint {
        /// The filesystem type that was missing.
        fstype: String,
        /// The directory that could not be created.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Mounting a missing filesystem failed.
    #[error(
        "{fstype} is not mounted and mounting it at {target} failed ({errno}): run as root \
         or mount it on the host (hostPath {target})"
    )]
    Mount {
        /// The filesystem type that was missing.
        fstype: String,
        /// Where the agent tried to mount it.
        target: PathBuf,
        /// Why mount(2) failed.
        #[source]
        errno: Errno,
    },
    /// The host has no cgroup v2 hierarchy.
    #[error(
        "no cgroup2 filesystem is mounted (checked {path}): Vigil needs cgroup v2; mount it \
         (e.g. on /sys/fs/cgroup/unified on hybrid hosts) or boot with \
         systemd.unified_cgroup_hierarchy=1, and expose /sys/fs/cgroup to the agent"
    )]
    NoCgroup2 {
        /// The mount table that was searched.
        path: PathBuf,
    },
}

/// One line of `/proc/self/mounts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount source (device, or a name like "cgroup2" for pseudo-fs).
    pub source: String,
    /// Mount point.
    pub target: PathBuf,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options, split on ','.
    pub options: Vec<String>,
}

/// Parses the `/proc/self/mounts` format, decoding the kernel's octal
/// escapes (`\040` for space etc.). Lines with fewer than four fields are
/// skipped.
pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            // The kernel escapes whitespace inside fields, so single-space
            // splitting is exact.
            let mut fields = line.split_ascii_whitespace();
            let source = fields.next()?;
            let target = fields.next()?;
            let fstype = fields.next()?;
            let options = fields.next()?;
            Some(MountEntry {
                source: String::from_utf8_lossy(&unescape(source)).into_owned(),
                // Mount points need not be UTF-8; keep their exact bytes.
                target: PathBuf::from(OsStr::from_bytes(&unescape(target))),
                fstype: String::from_utf8_lossy(&unescape(fstype)).into_owned(),
                options: String::from_utf8_lossy(&unescape(options))
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Decodes `\ooo` octal escapes; a backslash not followed by three octal
/// digits is kept literally.
pub(crate) fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            // \400 and above do not fit a byte; the kernel never emits them.
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Finds where a filesystem of type `fstype` is mounted.
///
/// Returns the first such mount, except that for `cgroup2` a mount at
/// `/sys/fs/cgroup` is preferred (so a stray second cgroup2 mount does not
/// win over the canonical one).
pub fn find_fs(entries: &[MountEntry], fstype: &str) -> Option<PathBuf> {
    let mut matching = entries.iter().filter(|e| e.fstype == fstype);
    if fstype == "cgroup2"
        && let Some(canonical) = matching
            .clone()
            .find(|e| e.target == Path::new(CGROUP2_CANONICAL))
    {
        return Some(canonical.target.clone());
    }
    matching.next().map(|e| e.target.clone())
}

/// This process's mount table.
pub fn read_mounts() -> Result<Vec<MountEntry>, MountError> {
    read_mount_table(Path::new(PROC_MOUNTS))
}

fn read_mount_table(path: &Path) -> Result<Vec<MountEntry>, MountError> {
    let text = std::fs::read_to_string(path).map_err(|source| MountError::ReadMounts {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_mounts(&text))
}

/// Returns where `fstype` is mounted, mounting it at `target` first if it is
/// not mounted anywhere.
///
/// An existing mount is used wherever it is (tracefs may be at
/// `/sys/kernel/debug/tracing`), so `target` only matters when mounting.
pub fn ensure_mounted(fstype: &str, target: &Path) -> Result<PathBuf, MountError> {
    ensure_mounted_with(Path::new(PROC_MOUNTS), fstype, target)
}

fn ensure_mounted_with(
    mount_table: &Path,
    fstype: &str,
    target: &Path,
) -> Result<PathBuf, MountError> {
    if let Some(existing) = find_fs(&read_mount_table(mount_table)?, fstype) {
        return Ok(existing);
    }
    std::fs::create_dir_all(target).map_err(|source| MountError::CreateMountPoint {
        fstype: fstype.to_owned(),
        target: target.to_path_buf(),
        source,
    })?;
    mount(
        Some(fstype),
        target,
        Some(fstype),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|errno| MountError::Mount {
        fstype: fstype.to_owned(),
        target: target.to_path_buf(),
        errno,
    })?;
    tracing::info!(fstype, target = %target.display(), "mounted missing filesystem");
    Ok(target.to_path_buf())
}

/// Finds the cgroup v2 mount point from `/proc/self/mounts`.
pub fn cgroup2_mount() -> Result<PathBuf, MountError> {
    cgroup2_mount_with(Path::new(PROC_MOUNTS))
}

fn cgroup2_mount_with(mount_table: &Path) -> Result<PathBuf, MountError> {
    find_fs(&read_mount_table(mount_table)?, "cgroup2").ok_or_else(|| MountError::NoCgroup2 {
        path: mount_table.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
debugfs /sys/kernel/debug debugfs rw,relatime 0 0
tracefs /sys/kernel/debug/tracing tracefs rw,relatime 0 0
/dev/sdb1 /mnt/My\\040Disk\\011x ext4 rw,relatime 0 0
";

    const UNIFIED: &str = "\
cgroup2 /run/other-cgroup cgroup2 rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
tracefs /sys/kernel/tracing tracefs rw 0 0
";

    #[test]
    fn parses_fields_and_escapes() {
        let entries = parse_mounts(HYBRID);
        assert_eq!(entries.len(), 9);
        assert_eq!(
            entries[3],
            MountEntry {
                source: "cgroup2".into(),
                target: "/sys/fs/cgroup/unified".into(),
                fstype: "cgroup2".into(),
                options: ["rw", "nosuid", "nodev", "noexec", "relatime", "nsdelegate"]
                    .map(String::from)
                    .to_vec(),
            }
        );
        assert_eq!(entries[8].target, Path::new("/mnt/My Disk\tx"));
        assert_eq!(entries[8].source, "/dev/sdb1");
    }

    #[test]
    fn unescape_edge_cases() {
        assert_eq!(unescape(r"a\134b"), b"a\\b");
        assert_eq!(unescape(r"a\012"), b"a\n");
        assert_eq!(unescape(r"a\"), b"a\\", "trailing backslash kept");
        assert_eq!(unescape(r"a\04"), b"a\\04", "too few digits kept");
        assert_eq!(unescape(r"a\089"), b"a\\089", "non-octal kept");
        assert_eq!(unescape(r"\777"), b"\\777", "out of byte range kept");
        assert_eq!(unescape(r"\303\251"), "é".as_bytes());
    }

    #[test]
    fn skips_short_lines() {
        let entries = parse_mounts("\nnone\nproc /proc proc\nproc /proc proc rw 0 0\n");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].fstype, "proc");
    }

    #[test]
    fn find_fs_cases() {
        let hybrid = parse_mounts(HYBRID);
        assert_eq!(
            find_fs(&hybrid, "cgroup2"),
            Some("/sys/fs/cgroup/unified".into())
        );
        assert_eq!(
            find_fs(&hybrid, "tracefs"),
            Some("/sys/kernel/debug/tracing".into())
        );
        assert_eq!(
            find_fs(&hybrid, "cgroup"),
            Some("/sys/fs/cgroup/systemd".into())
        );
        assert_eq!(find_fs(&hybrid, "bpf"), None);
        assert_eq!(find_fs(&hybrid, "cgroup2 "), None);

        let unified = parse_mounts(UNIFIED);
        assert_eq!(find_fs(&unified, "cgroup2"), Some("/sys/fs/cgroup".into()));
        assert_eq!(find_fs(&[], "cgroup2"), None);
    }

    #[test]
    fn cgroup2_from_fixture_tables() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("mounts");
        std::fs::write(&table, HYBRID).unwrap();
        assert_eq!(
            cgroup2_mount_with(&table).unwrap(),
            Path::new("/sys/fs/cgroup/unified")
        );

        std::fs::write(&table, "proc /proc proc rw 0 0\n").unwrap();
        let err = cgroup2_mount_with(&table).unwrap_err();
        assert!(matches!(err, MountError::NoCgroup2 { .. }));
        assert!(err.to_string().contains("cgroup v2"), "{err}");

        let missing = dir.path().join("nope");
        assert!(matches!(
            cgroup2_mount_with(&missing),
            Err(MountError::ReadMounts { path, .. }) if path == missing
        ));
    }

    #[test]
    fn ensure_mounted_prefers_existing_mount() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("mounts");
        std::fs::write(&table, HYBRID).unwrap();
        let target = dir.path().join("should-not-be-created");
        assert_eq!(
            ensure_mounted_with(&table, "tracefs", &target).unwrap(),
            Path::new("/sys/kernel/debug/tracing")
        );
        assert!(!target.exists());
    }

    #[test]
    fn ensure_mounted_failure_explains_itself() {
        // An unknown fstype makes mount(2) fail (ENODEV) without side
        // effects, exercising the path a non-root agent would hit.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("mnt/point");
        let err = ensure_mounted("vigil-no-such-fs", &target).unwrap_err();
        match &err {
            MountError::Mount {
                fstype,
                target: t,
                errno,
            } => {
                assert_eq!(fstype, "vigil-no-such-fs");
                assert_eq!(t, &target);
                assert_eq!(*errno, Errno::ENODEV);
            }
            other => panic!("expected Mount error, got {other:?}"),
        }
        assert!(target.is_dir(), "mount point is created before mounting");
        let msg = err.to_string();
        assert!(msg.contains("vigil-no-such-fs is not mounted"), "{msg}");
        assert!(
            msg.contains(&format!("hostPath {}", target.display())),
            "{msg}"
        );

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            ensure_mounted("vigil-no-such-fs", &file.join("sub")),
            Err(MountError::CreateMountPoint { .. })
        ));
    }

    #[test]
    fn real_mounts() {
        let cgroup2 = cgroup2_mount().unwrap();
        assert!(cgroup2.is_dir());
        assert!(
            cgroup2.join("cgroup.procs").exists(),
            "{}",
            cgroup2.display()
        );
        // proc is certainly mounted, so nothing is mounted here.
        let unused = tempfile::tempdir().unwrap();
        let proc = ensure_mounted("proc", &unused.path().join("x")).unwrap();
        assert!(proc.join("self/stat").exists(), "{}", proc.display());
        assert!(!unused.path().join("x").exists());
    }
}
