//! Whether the agent's programs are still attached. Someone with `CAP_BPF` can detach a
//! `bpf_link` from under the agent (`bpftool link detach`), which silently ends egress
//! enforcement or blinds a hook while the agent keeps running; so the agent counts its links
//! now and then and reports any that went away or were detached.
//!
//! The agent looks at the links it holds (its own `bpf_link` file descriptors, which needs no
//! capability beyond having them) and asks the kernel for each one's info with the `bpf`
//! syscall directly (`BPF_OBJ_GET_INFO_BY_FD`): a detached cgroup link still exists, with
//! cgroup id 0, and only the raw link info says so. [`links`] lists every link on the system
//! instead (`BPF_LINK_GET_NEXT_ID`, which needs `CAP_SYS_ADMIN`), for tools and tests.

use std::{
    collections::BTreeMap,
    os::fd::{FromRawFd as _, OwnedFd},
};

/// `bpf` commands and link types used here (from `linux/bpf.h`).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_TYPE_CGROUP: u32 = 3;

/// One live link, as the kernel describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The link's id.
    pub id: u32,
    /// The program it runs.
    pub program_id: u32,
    /// Whether it is still attached (a detached cgroup link lingers until its last fd closes).
    pub attached: bool,
}

/// The links this process holds a file descriptor of (`anon_inode:bpf_link` in
/// `/proc/self/fd`).
pub fn own_links() -> Vec<LinkState> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found: Vec<LinkState> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf_link")
        })
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        // A descriptor that closed meanwhile (or was reused) just fails to describe a link.
        .filter_map(fd_state)
        .collect();
    found.sort_unstable_by_key(|link| link.id);
    found.dedup_by_key(|link| link.id);
    found
}

/// Every link on the system (needs `CAP_SYS_ADMIN`; empty without it); links that vanish
/// while being listed are skipped.
pub fn links() -> Vec<LinkState> {
    let mut found = Vec::new();
    let mut id = 0u32;
    while let Some(next) = next_link_id(id) {
        id = next;
        if let Some(state) = link_state(id) {
            found.push(state);
        }
    }
    found
}

#[repr(C)]
#[derive(Default)]
struct NextIdAttr {
    start_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_link_info` up to the cgroup member of its union (which starts at byte 16).
#[repr(C, align(8))]
#[derive(Default)]
struct RawLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    cgroup_id: u64,
    attach_type: u32,
    _rest: [u32; 7],
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: `attr` is a live, properly sized `bpf_attr` prefix for `command`; the kernel
    // reads and writes only `size_of::<T>()` bytes of it.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            std::mem::size_of::<T>(),
        )
    }
}

fn next_link_id(after: u32) -> Option<u32> {
    let mut attr = NextIdAttr {
        start_id: after,
        ..NextIdAttr::default()
    };
    (bpf(BPF_LINK_GET_NEXT_ID, &mut attr) == 0).then_some(attr.next_id)
}

fn link_state(id: u32) -> Option<LinkState> {
    let mut attr = NextIdAttr {
        start_id: id,
        ..NextIdAttr::default()
    };
    let fd = bpf(BPF_LINK_GET_FD_BY_ID, &mut attr);
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    fd_state(std::os::fd::AsRawFd::as_raw_fd(&fd))
}

/// The state of the link behind descriptor `fd`.
fn fd_state(fd: i32) -> Option<LinkState> {
    let mut info = RawLinkInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<RawLinkInfo>() as u32,
        info: &mut info as *mut RawLinkInfo as u64,
    };
    if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) != 0 {
        return None;
    }
    Some(LinkState {
        id: info.id,
        program_id: info.prog_id,
        attached: info.link_type != BPF_LINK_TYPE_CGROUP || info.cgroup_id != 0,
    })
}

/// A program whose attachments dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detached {
    /// The program's name.
    pub program: String,
    /// Attached links at start.
    pub expected: usize,
    /// Attached links now.
    pub attached: usize,
}

/// The agent's programs and how many attached links each had at start.
#[derive(Clone, Debug)]
pub struct LinkIntegrity {
    expected: BTreeMap<u32, (String, usize)>,
}

impl LinkIntegrity {
    /// Notes the attached links of `programs` (name, kernel program id) as they are now.
    pub fn capture(programs: &[(String, u32)], links: &[LinkState]) -> LinkIntegrity {
        let expected = programs
            .iter()
            .map(|(name, id)| (*id, (name.clone(), attached_count(links, *id))))
            .filter(|(_, (_, count))| *count > 0)
            .collect();
        LinkIntegrity { expected }
    }

    /// Programs that had links at start and have fewer attached now.
    pub fn check(&self, links: &[LinkState]) -> Vec<Detached> {
        self.expected
            .iter()
            .filter_map(|(id, (name, expected))| {
                let attached = attached_count(links, *id);
                (attached < *expected).then(|| Detached {
                    program: name.clone(),
                    expected: *expected,
                    attached,
                })
            })
            .collect()
    }

    /// Programs watched.
    pub fn len(&self) -> usize {
        self.expected.len()
    }

    /// Whether no program is watched (no link could be seen at start).
    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }
}

fn attached_count(links: &[LinkState], program_id: u32) -> usize {
    links
        .iter()
        .filter(|link| link.program_id == program_id && link.attached)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: u32, program_id: u32, attached: bool) -> LinkState {
        LinkState {
            id,
            program_id,
            attached,
        }
    }

    #[test]
    fn detached_and_vanished_links_are_found() {
        let programs = vec![("sys_enter".to_string(), 10), ("connect4".to_string(), 20)];
        let start = [link(1, 10, true), link(2, 20, true), link(3, 99, true)];
        let integrity = LinkIntegrity::capture(&programs, &start);
        assert_eq!(integrity.len(), 2);
        assert!(integrity.check(&start).is_empty());
        // connect4's cgroup link detached (it lingers, unattached); sys_enter's link gone.
        let now = [link(2, 20, false), link(3, 99, true)];
        let found = integrity.check(&now);
        assert_eq!(
            found,
            vec![
                Detached {
                    program: "sys_enter".into(),
                    expected: 1,
                    attached: 0
                },
                Detached {
                    program: "connect4".into(),
                    expected: 1,
                    attached: 0
                }
            ]
        );
    }

    #[test]
    fn enumerating_links_does_not_fail_without_privileges() {
        // As root this lists the system's links; otherwise the kernel refuses and the list is
        // empty. Either way no panic, and ids are unique.
        let all = links();
        let mut ids: Vec<u32> = all.iter().map(|l| l.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }
}
