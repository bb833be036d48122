//! Tracepoint field offsets read from tracefs `format` files, so the programs read the right bytes
//! on every kernel version (sched_process_fork, for one, changed layout in 6.x).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use agent_common::{NO_FIELD, TracepointLayout};
use thiserror::Error;

/// A tracepoint whose format does not fit what the programs need.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The format file could not be read.
    #[error("cannot read the format of tracepoint {tracepoint} at {path}: {source}")]
    Unreadable {
        /// `category/name`.
        tracepoint: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A required field is missing or has an unexpected shape.
    #[error(
        "tracepoint {tracepoint} has no usable field `{field}` ({reason}); this kernel is not supported"
    )]
    Field {
        /// `category/name`.
        tracepoint: String,
        /// The field.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// One field of a tracepoint record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Byte offset in the record.
    pub offset: u16,
    /// Size in bytes.
    pub size: u16,
}

/// Parses a tracefs `format` file into its fields by name.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut declaration = None;
        let mut offset = None;
        let mut size = None;
        for part in rest.split(';').map(str::trim) {
            if let Some(value) = part.strip_prefix("offset:") {
                offset = value.trim().parse::<u16>().ok();
            } else if let Some(value) = part.strip_prefix("size:") {
                size = value.trim().parse::<u16>().ok();
            } else if declaration.is_none() && !part.is_empty() {
                declaration = Some(part);
            }
        }
        let (Some(declaration), Some(offset), Some(size)) = (declaration, offset, size) else {
            continue;
        };
        // "unsigned long args[6]" -> "args"; "__data_loc char[] filename" -> "filename".
        let Some(name) = declaration.split_whitespace().last() else {
            continue;
        };
        let name = name.split('[').next().unwrap_or(name);
        fields.insert(name.to_string(), Field { offset, size });
    }
    fields
}

struct Format {
    tracepoint: String,
    fields: HashMap<String, Field>,
}

impl Format {
    fn read(tracefs: &Path, category: &str, name: &str) -> Result<Format, LayoutError> {
        let tracepoint = format!("{category}/{name}");
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = fs::read_to_string(&path).map_err(|source| LayoutError::Unreadable {
            tracepoint: tracepoint.clone(),
            path,
            source,
        })?;
        Ok(Format {
            tracepoint,
            fields: parse_format(&text),
        })
    }

    fn field(&self, name: &'static str, size: u16) -> Result<u16, LayoutError> {
        match self.fields.get(name) {
            Some(field) if field.size == size => Ok(field.offset),
            Some(field) => Err(LayoutError::Field {
                tracepoint: self.tracepoint.clone(),
                field: name,
                reason: format!("size {} instead of {size}", field.size),
            }),
            None => Err(LayoutError::Field {
                tracepoint: self.tracepoint.clone(),
                field: name,
                reason: "missing".into(),
            }),
        }
    }

    fn expect_at(&self, name: &'static str, size: u16, offset: u16) -> Result<(), LayoutError> {
        let actual = self.field(name, size)?;
        if actual == offset {
            Ok(())
        } else {
            Err(LayoutError::Field {
                tracepoint: self.tracepoint.clone(),
                field: name,
                reason: format!("offset {actual}, the programs were built for {offset}"),
            })
        }
    }
}

/// Reads the offsets the sched programs need, and checks the fixed offsets the syscall programs
/// were compiled with.
pub fn read_layout(tracefs: &Path) -> Result<TracepointLayout, LayoutError> {
    let enter = Format::read(tracefs, "raw_syscalls", "sys_enter")?;
    enter.expect_at("id", 8, 8)?;
    enter.expect_at("args", 48, 16)?;
    let exit = Format::read(tracefs, "raw_syscalls", "sys_exit")?;
    exit.expect_at("id", 8, 8)?;
    exit.expect_at("ret", 8, 16)?;

    let fork = Format::read(tracefs, "sched", "sched_process_fork")?;
    let exec = Format::read(tracefs, "sched", "sched_process_exec")?;
    let exit_fmt = Format::read(tracefs, "sched", "sched_process_exit")?;
    let sock = Format::read(tracefs, "sock", "inet_sock_set_state")?;
    Ok(TracepointLayout {
        fork_child_pid: fork.field("child_pid", 4)?,
        exec_filename: exec.field("filename", 4)?,
        exec_old_pid: exec.field("old_pid", 4)?,
        // Added in 6.x; without it the kernel side treats a leader's exit as the process's.
        exit_group_dead: exit_fmt.field("group_dead", 1).unwrap_or(NO_FIELD),
        sock_skaddr: sock.field("skaddr", 8)?,
        sock_oldstate: sock.field("oldstate", 4)?,
        sock_newstate: sock.field("newstate", 4)?,
        sock_sport: sock.field("sport", 2)?,
        sock_family: sock.field("family", 2)?,
        sock_saddr: sock.field("saddr", 4)?,
        sock_saddr_v6: sock.field("saddr_v6", 16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6_18: &str = "name: sched_process_fork
ID: 312
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;

print fmt: \"comm=%s pid=%d child_comm=%s child_pid=%d\"
";

    const FORK_5_15: &str = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:1;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:1;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;
";

    #[test]
    fn parses_both_fork_layouts() {
        assert_eq!(
            parse_format(FORK_6_18).get("child_pid"),
            Some(&Field {
                offset: 20,
                size: 4
            })
        );
        assert_eq!(
            parse_format(FORK_5_15).get("child_pid"),
            Some(&Field {
                offset: 44,
                size: 4
            })
        );
        assert_eq!(
            parse_format(FORK_5_15).get("child_comm"),
            Some(&Field {
                offset: 28,
                size: 16
            })
        );
    }

    #[test]
    fn parses_arrays_and_data_loc() {
        let fields = parse_format(
            "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;",
        );
        assert_eq!(fields["args"].size, 48);
        assert_eq!(fields["filename"].size, 4);
    }

    #[test]
    fn reads_a_fixture_tracefs_and_rejects_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let write = |category: &str, name: &str, text: &str| {
            let path = dir.path().join("events").join(category).join(name);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("format"), text).unwrap();
        };
        write(
            "raw_syscalls",
            "sys_enter",
            "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;",
        );
        write(
            "raw_syscalls",
            "sys_exit",
            "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;",
        );
        write("sched", "sched_process_fork", FORK_5_15);
        write(
            "sched",
            "sched_process_exec",
            "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;",
        );
        write(
            "sock",
            "inet_sock_set_state",
            "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;",
        );
        write(
            "sched",
            "sched_process_exit",
            "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;",
        );
        let layout = read_layout(dir.path()).unwrap();
        assert_eq!(layout.fork_child_pid, 44);
        assert_eq!(layout.exec_old_pid, 16);
        assert_eq!(layout.exit_group_dead, NO_FIELD);
        assert_eq!((layout.sock_sport, layout.sock_saddr_v6), (24, 40));

        write(
            "raw_syscalls",
            "sys_exit",
            "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:long ret;\toffset:24;\tsize:8;\tsigned:1;",
        );
        let err = read_layout(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("raw_syscalls/sys_exit") && err.contains("ret"),
            "{err}"
        );
    }
}
