//! Stand-in containers for the catalog's container scenarios.
//!
//! The agent knows a process is in a container from two things only: its cgroup v2 path (a
//! `docker-<64 hex id>.scope` component) and, for metadata such as the image or
//! `container.privileged`, the runtime's state files. A scenario plays a container with exactly
//! those and nothing else, so no runtime is needed and nothing real is isolated:
//!
//! - [`container_prologue!`] creates the cgroup
//!   `<cgroup2 mount>/vigil-chaos.slice/docker-<id>.scope` and docker's state files below
//!   `$SANDBOX/../host/var/lib/docker/containers/<id>/` (the agent chaos starts reads runtime
//!   state below `<workdir>/host`), then exports `$CONTAINER_ID` and `$CONTAINER_CGROUP`;
//! - [`join_container!`] moves the current shell into the cgroup: everything it runs from then
//!   on is "in the container";
//! - [`CLEANUP`], the scenario's cleanup, kills whatever is left in the cgroup (`cgroup.kill`),
//!   removes it and the state files; it runs even when the script was killed or the run
//!   interrupted;
//! - [`sweep_leftovers`] removes the cgroups of chaos runs that died before their cleanup
//!   could run (SIGKILL, a crash); the agent chaos starts calls it first.
//!
//! The id is `<16 hex digits of the time in ns><8 hex digits of the chaos pid>` followed by
//! [`ID_MARKER`], so the sweep can tell stand-ins from real containers and whether the chaos
//! run that made one is still alive.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The cgroup, directly below the cgroup2 mount, that holds every stand-in container.
pub const SLICE: &str = "vigil-chaos.slice";

/// The fixed end of every stand-in container id: "vigil-chaos" in ASCII, as hex digits, padded
/// with zeros to 40 digits.
pub const ID_MARKER: &str = "766967696c2d6368616f73000000000000000000";

/// How long the sweep waits for killed processes to leave a cgroup before removing it.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Script prologue creating a stand-in container; `$privileged` (`"true"` or `"false"`) is what
/// its `hostconfig.json` says. Exports `$CONTAINER_ID` and `$CONTAINER_CGROUP` (the cgroup's
/// directory) and writes the id to `$SANDBOX/container-id` first, so [`CLEANUP`] finds whatever
/// was created even if the script dies halfway. `$PPID` is the chaos process, which runs each
/// script directly.
macro_rules! container_prologue {
    ($privileged:literal) => {
        concat!(
            r#"CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "${CGROUP2:-}" ] || exit 1
CONTAINER_ID=$(printf '%016x%08x%s' "$(date +%s%N)" "$PPID" "#,
            "766967696c2d6368616f73000000000000000000",
            r#")
echo "$CONTAINER_ID" > "${SANDBOX:?}/container-id"
CONTAINER_CGROUP="${CGROUP2:?}/vigil-chaos.slice/docker-${CONTAINER_ID:?}.scope"
# A concurrent chaos run's cleanup may remove the (empty) slice between the two mkdirs.
mkdir -p "${CONTAINER_CGROUP:?}" 2> /dev/null || mkdir -p "${CONTAINER_CGROUP:?}" || exit 1
CONTAINER_STATE="${SANDBOX:?}/../host/var/lib/docker/containers/${CONTAINER_ID:?}"
mkdir -p "${CONTAINER_STATE:?}" || exit 1
printf '{"ID": "%s", "Name": "/vigil-chaos", "Created": "%s", "Config": {"Image": "docker.io/library/vigil-chaos:1.0", "Labels": {}}, "MountPoints": {}}\n' "$CONTAINER_ID" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "${CONTAINER_STATE:?}/config.v2.json"
printf '{"Privileged": %s}\n' "#,
            $privileged,
            r#" > "${CONTAINER_STATE:?}/hostconfig.json"
export CONTAINER_ID CONTAINER_CGROUP
"#
        )
    };
}
pub(crate) use container_prologue;

/// Moves the current shell into the stand-in container made by [`container_prologue!`]. Has no
/// single quotes, so it also fits in a `sh -c '...'` body.
macro_rules! join_container {
    () => {
        "echo $$ > \"${CONTAINER_CGROUP:?}/cgroup.procs\" || exit 1\n"
    };
}
pub(crate) use join_container;

/// A whole script: creates a stand-in container (`$privileged`: `"true"` or `"false"`), joins
/// it, and runs `$body` inside.
macro_rules! in_container {
    ($privileged:literal, $body:literal) => {
        concat!(
            $crate::chaos::container::container_prologue!($privileged),
            $crate::chaos::container::join_container!(),
            $body
        )
    };
}
pub(crate) use in_container;

/// Cleanup of every container scenario: kills what is left in the stand-in container, removes
/// its cgroup (and the slice, once empty) and its state files. Harmless when the script never
/// got as far as creating them.
pub const CLEANUP: &str = r#"id=$(cat "${SANDBOX:?}/container-id" 2> /dev/null) || exit 0
case "$id" in "" | *[!0-9a-f]*) exit 0 ;; esac
[ "${#id}" -eq 64 ] || exit 0
CGROUP2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
scope="${CGROUP2:?}/vigil-chaos.slice/docker-${id:?}.scope"
if [ -d "${scope:?}" ]; then
    if ! echo 1 > "${scope:?}/cgroup.kill" 2> /dev/null; then
        for pid in $(cat "${scope:?}/cgroup.procs"); do kill -9 "$pid" 2> /dev/null; done
    fi
    i=0
    while grep -q '^populated 1' "${scope:?}/cgroup.events" 2> /dev/null && [ "$i" -lt 200 ]; do
        sleep 0.01
        i=$((i + 1))
    done
    rmdir "${scope:?}"
fi
rmdir "${CGROUP2:?}/vigil-chaos.slice" 2> /dev/null
state="${SANDBOX:?}/../host/var/lib/docker/containers/${id:?}"
rm -f "${state:?}/config.v2.json" "${state:?}/hostconfig.json"
rmdir "${state:?}" 2> /dev/null
true
"#;

/// The pid of the chaos run that created the stand-in container whose cgroup is named `name`,
/// or `None` if `name` is not a stand-in's (`docker-<id>.scope` with an id ending in
/// [`ID_MARKER`]).
pub fn creator_pid(name: &str) -> Option<u32> {
    let id = name.strip_prefix("docker-")?.strip_suffix(".scope")?;
    if id.len() != 64
        || !id.ends_with(ID_MARKER)
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(id.get(16..24)?, 16).ok()
}

/// Removes the stand-in containers below `<cgroup2>/vigil-chaos.slice` whose chaos run (a pid
/// looked up in `proc_root`) is gone: kills what still runs in each, then removes its cgroup.
/// Returns how many were removed. Stand-ins of chaos runs still alive are left alone, and so is
/// every cgroup that is not a stand-in's.
pub fn sweep_leftovers(cgroup2: &Path, proc_root: &Path) -> usize {
    let slice = cgroup2.join(SLICE);
    let Ok(entries) = std::fs::read_dir(&slice) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(creator_pid) else {
            continue;
        };
        if proc_root.join(pid.to_string()).exists() {
            continue;
        }
        let scope = entry.path();
        kill_all(&scope);
        match std::fs::remove_dir(&scope) {
            Ok(()) => removed += 1,
            Err(error) => tracing::warn!(
                cgroup = %scope.display(),
                %error,
                "could not remove a leftover chaos container"
            ),
        }
    }
    // Fails, as it should, while another chaos run has a container in it.
    let _ = std::fs::remove_dir(&slice);
    if removed > 0 {
        tracing::info!(removed, "removed leftover chaos containers");
    }
    removed
}

/// Kills every process in the cgroup `scope` and waits (a bounded time) until it is empty.
fn kill_all(scope: &Path) {
    // cgroup.kill (Linux 5.14) kills atomically, including processes forking meanwhile; the
    // file must exist, so it is never created.
    let killed = std::fs::OpenOptions::new()
        .write(true)
        .open(scope.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"))
        .is_ok();
    if !killed {
        for pid in pids(scope) {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid was read from the
            // cgroup's own process list.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let deadline = Instant::now() + KILL_WAIT;
    while !pids(scope).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes in the cgroup `scope` (none when it cannot be read).
fn pids(scope: &Path) -> Vec<i32> {
    std::fs::read_to_string(scope.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .filter(|&pid| pid > 0)
        .collect()
}

/// Where the agent chaos starts reads runtime state: below `<workdir>/host`, where the
/// scenarios write their stand-ins' docker state.
pub fn host_root(workdir: &Path) -> PathBuf {
    workdir.join("host")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pid: u32) -> String {
        format!("{:016x}{pid:08x}{ID_MARKER}", 1_767_225_600_000_000_000_u64)
    }

    #[test]
    fn ids_carry_the_creator_pid_and_the_marker() {
        assert_eq!(id(4242).len(), 64);
        assert_eq!(
            creator_pid(&format!("docker-{}.scope", id(4242))),
            Some(4242)
        );
        let real = "3f2a9c1be0d54c7a8e6b2f1d0c9a8b7e6f5d4c3b2a1908f7e6d5c4b3a2918f70";
        assert_eq!(creator_pid(&format!("docker-{real}.scope")), None);
        assert_eq!(creator_pid(&format!("crio-{}.scope", id(1))), None);
        assert_eq!(creator_pid(&format!("docker-{}.scope", &id(1)[1..])), None);
        assert_eq!(
            creator_pid(&format!("docker-{}.scope", id(1).to_uppercase())),
            None
        );
    }

    #[test]
    fn the_marker_spells_vigil_chaos() {
        let bytes: Vec<u8> = (0..ID_MARKER.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&ID_MARKER[i..i + 2], 16).ok())
            .filter(|&b| b != 0)
            .collect();
        assert_eq!(bytes, b"vigil-chaos");
        // The prologue spells the marker out (concat! takes only literals).
        assert!(container_prologue!("false").contains(ID_MARKER));
    }

    #[test]
    fn sweep_removes_only_stand_ins_of_dead_runs() {
        let cgroup2 = tempfile::tempdir().expect("tempdir");
        let procfs = tempfile::tempdir().expect("tempdir");
        let alive = 77;
        std::fs::create_dir(procfs.path().join(alive.to_string())).expect("pid dir");
        let slice = cgroup2.path().join(SLICE);
        let dead_scope = slice.join(format!("docker-{}.scope", id(78)));
        let alive_scope = slice.join(format!("docker-{}.scope", id(alive)));
        let real_scope = slice.join(format!("docker-{}.scope", "ab".repeat(32)));
        for dir in [&dead_scope, &alive_scope, &real_scope] {
            std::fs::create_dir_all(dir).expect("scope");
        }
        assert_eq!(sweep_leftovers(cgroup2.path(), procfs.path()), 1);
        assert!(!dead_scope.exists());
        assert!(alive_scope.exists() && real_scope.exists());
        // Nothing to do the second time, and no slice at all is fine too.
        assert_eq!(sweep_leftovers(cgroup2.path(), procfs.path()), 0);
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(sweep_leftovers(empty.path(), procfs.path()), 0);
    }

    #[test]
    fn scripts_are_valid_shell() {
        for text in [
            CLEANUP,
            in_container!("true", "true\n"),
            concat!(
                container_prologue!("false"),
                "exec unshare --mount /bin/sh -ec '",
                join_container!(),
                "true'\n"
            ),
        ] {
            let status = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", text])
                .status()
                .expect("run /bin/sh -n");
            assert!(status.success(), "not valid sh:\n{text}");
        }
    }
}
