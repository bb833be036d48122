//! Renders syscall parameters as Falco renders `evt.arg.<name>` and `evt.args`.

use super::{
    ParamValue, SyscallEvent, render,
    syscalls::{Kind, Param},
};

/// The text Falco shows for `param` of `call`.
pub fn render_param(call: &SyscallEvent, param: &Param) -> String {
    match call.value(param) {
        ParamValue::Str(text) => text.to_string(),
        ParamValue::Argv(argv) => argv.join(" "),
        ParamValue::SockAddr(addr) => addr.map(|a| a.render()).unwrap_or_default(),
        // Printable bytes as they are, the rest as `.`, like Falco's default buffer format.
        ParamValue::Bytes(bytes) => bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect(),
        ParamValue::Num(raw) => render_number(call, param.kind, raw),
    }
}

fn render_number(call: &SyscallEvent, kind: Kind, raw: u64) -> String {
    match kind {
        Kind::Fd | Kind::Int | Kind::Pid => (raw as i64 as i32 as i64).to_string(),
        Kind::Uint => raw.to_string(),
        Kind::Uid | Kind::Gid => (raw as u32).to_string(),
        Kind::OpenFlags => render::open_flags(raw),
        Kind::Mode => render::file_mode(raw),
        Kind::ModeBits => render::mode_bits(raw),
        Kind::PtraceRequest => render::ptrace_request(raw),
        Kind::SocketFamily => render::socket_family(raw),
        Kind::SocketType => render::socket_type(raw),
        Kind::SocketProto => render::socket_proto(call.args[0], raw),
        Kind::CloneFlags => render::clone_flags(raw),
        Kind::NsFlags => render::unshare_flags(raw),
        Kind::MountFlags => render::mount_flags(raw),
        Kind::UmountFlags => render::umount_flags(raw),
        Kind::AtFlags => render::at_flags(raw),
        Kind::RenameFlags => render::rename_flags(raw),
        Kind::MemfdFlags => render::memfd_flags(raw),
        Kind::Dup3Flags => render::dup3_flags(raw),
        Kind::Accept4Flags => render::accept4_flags(raw),
        Kind::FcntlCmd => render::fcntl_cmd(raw),
        Kind::BpfCmd => render::bpf_cmd(raw),
        Kind::FinitFlags => render::finit_module_flags(raw),
        Kind::Path { .. } | Kind::Str | Kind::SockAddr | Kind::Argv | Kind::Bytes => {
            raw.to_string()
        }
    }
}

/// Falco's `evt.args`: every parameter but the return value as `name=value`, space-separated.
pub fn render_args(call: &SyscallEvent) -> String {
    let mut line = String::new();
    for param in call.spec.params {
        if param.source == super::syscalls::Source::Ret {
            continue;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(param.name);
        line.push('=');
        line.push_str(&render_param(call, param));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{decode::decode, synth::RecordBuilder, syscalls::Syscall};

    #[test]
    fn renders_open_and_ptrace_like_falco() {
        let bytes = RecordBuilder::new(Syscall::Openat, 1, 3)
            .arg(0, (-100i64) as u64)
            .arg(2, (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64)
            .arg(3, 0o644)
            .string(0, "/tmp/x")
            .build();
        let event = decode(&bytes).unwrap();
        let call = event.syscall().unwrap();
        let flags = render_param(call, call.spec.param("flags").unwrap());
        for bit in ["O_WRONLY", "O_CREAT", "O_TRUNC"] {
            assert!(flags.contains(bit), "{flags}");
        }
        assert_eq!(
            render_param(call, call.spec.param("dirfd").unwrap()),
            "-100"
        );
        assert_eq!(
            render_args(call),
            format!("dirfd=-100 name=/tmp/x flags={flags} mode=0644")
        );

        let bytes = RecordBuilder::new(Syscall::Ptrace, 1, 0)
            .arg(0, libc::PTRACE_ATTACH as u64)
            .arg(1, 4242)
            .build();
        let event = decode(&bytes).unwrap();
        let call = event.syscall().unwrap();
        assert_eq!(
            render_param(call, call.spec.param("request").unwrap()),
            "PTRACE_ATTACH"
        );
        assert_eq!(render_param(call, call.spec.param("pid").unwrap()), "4242");
    }
}
