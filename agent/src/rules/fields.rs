//! The fields rule conditions and outputs can use: Falco's names and types, each with the code
//! that extracts it from an enriched event. `vigil fields` prints this table.

use std::{borrow::Cow, net::IpAddr, sync::Arc};

use thiserror::Error;

use crate::{
    enrich::Enriched,
    events::{EventKind, ParamValue, args, render, syscalls},
    state::{
        container_meta::ContainerMeta,
        fd::{FdInfo, FdType},
        process::ProcessInfo,
    },
};

/// Falco's field types, as far as comparisons care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Text (CHARBUF, FSPATH).
    Str,
    /// An integer (INT*, UINT*, PORT, PID, RELTIME, ABSTIME).
    Int,
    /// A boolean.
    Bool,
    /// An IP address.
    Ip,
    /// An IP address compared against networks (`fd.net in ("10.0.0.0/8")`).
    IpNet,
    /// Raw bytes.
    Bytes,
}

impl FieldType {
    /// The name `vigil fields` shows.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "number",
            FieldType::Bool => "bool",
            FieldType::Ip => "ipaddr",
            FieldType::IpNet => "ipnet",
            FieldType::Bytes => "bytes",
        }
    }
}

/// An extracted value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text, borrowed from the event where possible.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An address.
    Ip(IpAddr),
    /// Bytes.
    Bytes(Cow<'a, [u8]>),
}

impl Value<'_> {
    /// The value as Falco prints it in outputs.
    pub fn render(&self) -> String {
        match self {
            Value::Str(text) => text.to_string(),
            Value::Int(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Ip(ip) => ip.to_string(),
            Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    /// Converts to an owned value.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(text) => Value::Str(Cow::Owned(text.into_owned())),
            Value::Int(n) => Value::Int(n),
            Value::Bool(b) => Value::Bool(b),
            Value::Ip(ip) => Value::Ip(ip),
            Value::Bytes(bytes) => Value::Bytes(Cow::Owned(bytes.into_owned())),
        }
    }
}

/// The argument of a field reference, checked and converted at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldArg {
    /// No argument.
    None,
    /// `[n]`.
    Index(usize),
    /// `[KEY]`.
    Key(String),
    /// `evt.arg.<name>`: a known parameter name.
    Param(&'static str),
}

/// What argument a field takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgRule {
    /// None allowed.
    None,
    /// An optional index (`proc.aname` or `proc.aname[2]`).
    OptionalIndex,
    /// A required index (`evt.arg[0]`).
    Index,
    /// An optional key (`proc.env` or `proc.env[HOME]`).
    OptionalKey,
    /// A required key (`container.mount.dest[/var/run/docker.sock]`).
    Key,
}

type One = for<'a> fn(&'a Enriched, &FieldArg) -> Option<Value<'a>>;
type Many = for<'a> fn(&'a Enriched, &FieldArg) -> Vec<Value<'a>>;

/// How a field gets its value.
#[derive(Clone, Copy)]
pub enum Getter {
    /// One value, or none when the event does not have it.
    One(One),
    /// Several candidate values; a check holds if it holds for any of them (`proc.aname`
    /// without an index, `fd.ip`, `fd.net`). With an index/argument, `One` semantics apply
    /// through the same function returning at most one value.
    Any(Many),
    /// Not supplied by Vigil yet; using it is a load error with this reason.
    Unsupported(&'static str),
}

/// One field.
#[derive(Clone, Copy)]
pub struct FieldDef {
    /// Falco's name.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// The argument it takes.
    pub arg: ArgRule,
    /// What it means.
    pub desc: &'static str,
    /// How to extract it.
    pub getter: Getter,
}

impl std::fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldDef")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .finish_non_exhaustive()
    }
}

impl FieldDef {
    /// Whether Vigil supplies this field.
    pub fn supported(&self) -> bool {
        !matches!(self.getter, Getter::Unsupported(_))
    }
}

/// A field reference that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FieldError {
    /// No such field.
    #[error("unknown field '{0}'")]
    Unknown(String),
    /// `evt.arg.<name>` with a name no traced syscall has.
    #[error("unknown event argument '{0}'")]
    UnknownParam(String),
    /// Known to Falco, not supplied by Vigil yet.
    #[error("field '{field}' is not supported by Vigil yet: {reason}")]
    Unsupported {
        /// The field.
        field: String,
        /// Why.
        reason: &'static str,
    },
    /// Wrong or missing argument.
    #[error("field '{field}' {problem}")]
    BadArg {
        /// The field.
        field: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Resolves a field reference: `name` as written (`evt.arg.flags`, `proc.aname`) and its
/// bracketed argument.
pub fn lookup(name: &str, arg: Option<&str>) -> Result<(&'static FieldDef, FieldArg), FieldError> {
    for (prefix, def) in [("evt.arg.", &EVT_ARG_NAMED), ("evt.rawarg.", &EVT_RAWARG)] {
        if let Some(param) = name.strip_prefix(prefix) {
            if arg.is_some() {
                return Err(FieldError::BadArg {
                    field: name.to_string(),
                    problem: "takes no [argument]",
                });
            }
            let known = syscalls::SYSCALLS
                .iter()
                .flat_map(|spec| spec.params.iter())
                .find(|p| p.name == param)
                .ok_or_else(|| FieldError::UnknownParam(param.to_string()))?;
            return Ok((def, FieldArg::Param(known.name)));
        }
    }
    if arg.is_none()
        && let Some((field, key)) = DOTTED_KEY_FIELDS.iter().find_map(|field| {
            let key = name.strip_prefix(field)?.strip_prefix('.')?;
            (!key.is_empty()).then_some((*field, key))
        })
    {
        return lookup(field, Some(key));
    }
    let def = FIELDS
        .iter()
        .find(|def| def.name == name)
        .ok_or_else(|| FieldError::Unknown(name.to_string()))?;
    if let Getter::Unsupported(reason) = def.getter {
        return Err(FieldError::Unsupported {
            field: name.to_string(),
            reason,
        });
    }
    let bad = |problem| FieldError::BadArg {
        field: name.to_string(),
        problem,
    };
    let arg = match (def.arg, arg) {
        (ArgRule::None, None) | (ArgRule::OptionalIndex | ArgRule::OptionalKey, None) => {
            FieldArg::None
        }
        (ArgRule::None, Some(_)) => return Err(bad("takes no [argument]")),
        (ArgRule::Index | ArgRule::Key, None) => return Err(bad("requires an [argument]")),
        (ArgRule::Index | ArgRule::OptionalIndex, Some(text)) => FieldArg::Index(
            text.trim()
                .parse()
                .map_err(|_| bad("requires a numeric [index]"))?,
        ),
        (ArgRule::Key | ArgRule::OptionalKey, Some(text)) => FieldArg::Key(text.to_string()),
    };
    Ok((def, arg))
}

/// Extracts every value of a field for an event (one value for most fields).
pub fn extract<'a>(def: &FieldDef, arg: &FieldArg, event: &'a Enriched) -> Vec<Value<'a>> {
    match def.getter {
        Getter::One(get) => get(event, arg).into_iter().collect(),
        Getter::Any(get) => get(event, arg),
        Getter::Unsupported(_) => Vec::new(),
    }
}

/// Extracts a field's single value (the first, for multi-valued fields).
pub fn extract_one<'a>(def: &FieldDef, arg: &FieldArg, event: &'a Enriched) -> Option<Value<'a>> {
    match def.getter {
        Getter::One(get) => get(event, arg),
        Getter::Any(get) => get(event, arg).into_iter().next(),
        Getter::Unsupported(_) => None,
    }
}

fn s(text: &str) -> Option<Value<'_>> {
    Some(Value::Str(Cow::Borrowed(text)))
}

fn owned<'a>(text: String) -> Option<Value<'a>> {
    Some(Value::Str(Cow::Owned(text)))
}

fn int<'a>(number: impl Into<i64>) -> Option<Value<'a>> {
    Some(Value::Int(number.into()))
}

fn nonempty(text: &str) -> Option<Value<'_>> {
    (!text.is_empty()).then_some(Value::Str(Cow::Borrowed(text)))
}

/// The process `level` steps up: 0 is the process itself, 1 its parent.
fn ancestor(event: &Enriched, level: usize) -> Option<&Arc<ProcessInfo>> {
    if level == 0 {
        Some(&event.process)
    } else {
        event.ancestors.get(level - 1)
    }
}

/// Falco's ancestor fields: with `[n]` the n-th level (0 = self), without any ancestor.
fn ancestors_by<'a>(
    event: &'a Enriched,
    arg: &FieldArg,
    get: fn(&'a ProcessInfo) -> Option<Value<'a>>,
) -> Vec<Value<'a>> {
    match arg {
        FieldArg::Index(level) => ancestor(event, *level)
            .and_then(|p| get(p))
            .into_iter()
            .collect(),
        _ => event.ancestors.iter().filter_map(|p| get(p)).collect(),
    }
}

fn parent(event: &Enriched) -> Option<&ProcessInfo> {
    event.ancestors.first().map(Arc::as_ref)
}

fn fd(event: &Enriched) -> Option<&FdInfo> {
    event.fd.as_ref()?.info.as_ref()
}

type Pick = fn(&crate::state::fd::SocketInfo) -> Option<std::net::SocketAddr>;

/// One endpoint of the event's inet socket.
fn socket_endpoint(event: &Enriched, pick: Pick) -> Option<std::net::SocketAddr> {
    let info = fd(event)?;
    if !info.kind.is_inet() {
        return None;
    }
    pick(info.socket.as_ref()?)
}

fn socket_ip(event: &Enriched, pick: Pick) -> Option<Value<'_>> {
    socket_endpoint(event, pick).map(|addr| Value::Ip(addr.ip()))
}

fn socket_port(event: &Enriched, pick: Pick) -> Option<Value<'_>> {
    socket_endpoint(event, pick).map(|addr| Value::Int(addr.port().into()))
}

/// `fd.ip`, `fd.port`, `fd.net`: the client's and the server's value; either may match.
fn both_sides<'a>(
    event: &'a Enriched,
    value: fn(&'a Enriched, Pick) -> Option<Value<'a>>,
) -> Vec<Value<'a>> {
    [value(event, |s| s.client()), value(event, |s| s.server())]
        .into_iter()
        .flatten()
        .collect()
}

fn both_ips<'a>(event: &'a Enriched, _: &FieldArg) -> Vec<Value<'a>> {
    both_sides(event, socket_ip)
}

fn both_ports<'a>(event: &'a Enriched, _: &FieldArg) -> Vec<Value<'a>> {
    both_sides(event, socket_port)
}

fn meta(event: &Enriched) -> Option<&ContainerMeta> {
    event.container_meta.as_deref()
}

fn syscall_param<'a>(event: &'a Enriched, name: &str) -> Option<ParamValue<'a>> {
    event.event.syscall()?.param(name)
}

fn open_flags(event: &Enriched) -> Option<u64> {
    let call = event.event.syscall()?;
    match call.spec.syscall {
        syscalls::Syscall::Open | syscalls::Syscall::Openat | syscalls::Syscall::Openat2 => {
            match call.param("flags")? {
                ParamValue::Num(flags) => Some(flags),
                _ => None,
            }
        }
        syscalls::Syscall::Creat => Some((libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64),
        _ => None,
    }
}

fn render_any_param(event: &Enriched, name: &str) -> Option<String> {
    let call = event.event.syscall()?;
    let param = call.spec.param(name)?;
    Some(args::render_param(call, param))
}

fn evt_arg<'a>(event: &'a Enriched, arg: &FieldArg) -> Option<Value<'a>> {
    match (&event.event.kind, arg) {
        (_, FieldArg::Param(name)) => owned(render_any_param(event, name)?),
        (EventKind::Syscall(call), FieldArg::Index(index)) => {
            let param = call.spec.params.get(*index)?;
            owned(args::render_param(call, param))
        }
        _ => None,
    }
}

fn evt_rawarg<'a>(event: &'a Enriched, arg: &FieldArg) -> Option<Value<'a>> {
    let FieldArg::Param(name) = arg else {
        return None;
    };
    match syscall_param(event, name)? {
        ParamValue::Num(raw) => int(raw as i64),
        ParamValue::Str(text) => s(text),
        _ => None,
    }
}

fn env_value<'a>(process: &'a ProcessInfo, arg: &FieldArg) -> Option<Value<'a>> {
    match arg {
        FieldArg::Key(key) => process.env.iter().find_map(|entry| {
            let (name, value) = entry.split_once('=')?;
            (name == key).then_some(Value::Str(Cow::Borrowed(value)))
        }),
        _ => (!process.env.is_empty()).then(|| Value::Str(Cow::Owned(process.env.join(" ")))),
    }
}

const EVT_ARG_NAMED: FieldDef = FieldDef {
    name: "evt.arg.<name>",
    ty: FieldType::Str,
    arg: ArgRule::None,
    desc: "an event parameter by name, rendered as Falco does (flags as O_WRONLY|O_CREAT, ...)",
    getter: Getter::One(evt_arg),
};

const EVT_RAWARG: FieldDef = FieldDef {
    name: "evt.rawarg.<name>",
    ty: FieldType::Int,
    arg: ArgRule::None,
    desc: "an event parameter by name, as its raw number",
    getter: Getter::One(evt_rawarg),
};

macro_rules! field {
    ($name:literal, $ty:ident, $arg:ident, $desc:literal, one($f:expr)) => {
        FieldDef {
            name: $name,
            ty: FieldType::$ty,
            arg: ArgRule::$arg,
            desc: $desc,
            getter: Getter::One($f),
        }
    };
    ($name:literal, $ty:ident, $arg:ident, $desc:literal, any($f:expr)) => {
        FieldDef {
            name: $name,
            ty: FieldType::$ty,
            arg: ArgRule::$arg,
            desc: $desc,
            getter: Getter::Any($f),
        }
    };
    ($name:literal, $ty:ident, $desc:literal, unsupported $why:expr) => {
        FieldDef {
            name: $name,
            ty: FieldType::$ty,
            arg: ArgRule::None,
            desc: $desc,
            getter: Getter::Unsupported($why),
        }
    };
}

fn ip_names(event: &Enriched, pick: Pick) -> Vec<Value<'_>> {
    let Some(addr) = socket_endpoint(event, pick) else {
        return Vec::new();
    };
    super::dns::global()
        .names_for(&addr.ip())
        .into_iter()
        .map(|name| Value::Str(Cow::Owned(name.to_string())))
        .collect()
}

/// Every field, in `vigil fields` order.
pub static FIELDS: &[FieldDef] = &[
    // evt.*
    field!(
        "evt.type",
        Str,
        None,
        "event type: the syscall name, or procfork/procexec/procexit",
        one(|e, _| s(e.event.type_name()))
    ),
    field!(
        "evt.num",
        Int,
        None,
        "event sequence number",
        one(|e, _| int(e.num as i64))
    ),
    field!(
        "evt.time",
        Str,
        None,
        "event time, HH:MM:SS.nnnnnnnnn (UTC)",
        one(|e, _| owned(crate::rules::output::clock_time(e.time_ns)))
    ),
    field!(
        "evt.time.iso8601",
        Str,
        None,
        "event time, RFC 3339 with nanoseconds",
        one(|e, _| owned(crate::output::json::rfc3339(e.time_ns)))
    ),
    field!(
        "evt.rawtime",
        Int,
        None,
        "event time, ns since the epoch",
        one(|e, _| int(e.time_ns))
    ),
    field!(
        "evt.dir",
        Str,
        None,
        "event direction: always < (Vigil reports completed calls)",
        one(|_, _| s("<"))
    ),
    field!(
        "evt.res",
        Str,
        None,
        "SUCCESS or the errno name",
        one(|e, _| owned(render::render_res(e.event.syscall()?.ret)))
    ),
    field!(
        "evt.rawres",
        Int,
        None,
        "the raw return value",
        one(|e, _| int(e.event.syscall()?.ret))
    ),
    field!(
        "evt.failed",
        Bool,
        None,
        "whether the syscall failed",
        one(|e, _| Some(Value::Bool(e.event.syscall()?.ret < 0)))
    ),
    field!(
        "evt.args",
        Str,
        None,
        "every parameter as name=value",
        one(|e, _| owned(args::render_args(e.event.syscall()?)))
    ),
    field!(
        "evt.arg",
        Str,
        Index,
        "the n-th event parameter (evt.arg[0])",
        one(evt_arg)
    ),
    field!(
        "evt.is_open_read",
        Bool,
        None,
        "an open for reading",
        one(|e, _| Some(Value::Bool(render::open_mode_is_read(open_flags(e)?))))
    ),
    field!(
        "evt.is_open_write",
        Bool,
        None,
        "an open for writing",
        one(|e, _| Some(Value::Bool(render::open_mode_is_write(open_flags(e)?))))
    ),
    field!(
        "evt.is_open_exec",
        Bool,
        None,
        "an open that creates a file with an execute bit",
        one(|e, _| {
            let flags = open_flags(e)?;
            let mode = match syscall_param(e, "mode") {
                Some(ParamValue::Num(mode)) => mode,
                _ => 0,
            };
            Some(Value::Bool(
                flags & libc::O_CREAT as u64 != 0 && mode & 0o111 != 0,
            ))
        })
    ),
    field!(
        "evt.buffer",
        Bytes,
        None,
        "the first bytes (at most 80) an I/O call transferred; captured only while a rule reads it",
        one(|e, _| match syscall_param(e, "data")? {
            ParamValue::Bytes(bytes) => Some(Value::Bytes(Cow::Borrowed(bytes))),
            _ => None,
        })
    ),
    // proc.*
    field!(
        "proc.pid",
        Int,
        None,
        "process id",
        one(|e, _| int(e.process.pid))
    ),
    field!(
        "proc.ppid",
        Int,
        None,
        "parent process id",
        one(|e, _| int(e.process.ppid))
    ),
    field!(
        "proc.vpid",
        Int,
        None,
        "process id in its pid namespace",
        one(|e, _| int(e.process.vpid))
    ),
    field!(
        "proc.sid",
        Int,
        None,
        "session id",
        one(|e, _| int(e.process.sid))
    ),
    field!(
        "proc.pgid",
        Int,
        None,
        "process group id",
        one(|e, _| int(e.process.pgid))
    ),
    field!(
        "proc.is_vpgid_leader",
        Bool,
        None,
        "the process leads its process group",
        one(|e, _| Some(Value::Bool(e.process.pgid == e.process.pid)))
    ),
    field!(
        "proc.name",
        Str,
        None,
        "process name (comm)",
        one(|e, _| s(&e.process.comm))
    ),
    field!(
        "proc.exe",
        Str,
        None,
        "first command-line argument",
        one(|e, _| s(&e.process.exe))
    ),
    field!(
        "proc.exepath",
        Str,
        None,
        "full executable path",
        one(|e, _| nonempty(&e.process.exepath))
    ),
    field!(
        "proc.args",
        Str,
        OptionalIndex,
        "arguments (without the first); [n] is one of them",
        one(|e, arg| match arg {
            FieldArg::Index(i) => e
                .process
                .args
                .get(*i)
                .map(|a| Value::Str(Cow::Borrowed(a.as_str()))),
            _ => owned(e.process.args_line()),
        })
    ),
    field!(
        "proc.cmdline",
        Str,
        None,
        "name and arguments",
        one(|e, _| owned(e.process.cmdline()))
    ),
    field!(
        "proc.cwd",
        Str,
        None,
        "working directory",
        one(|e, _| nonempty(&e.process.cwd))
    ),
    field!(
        "proc.tty",
        Int,
        None,
        "controlling terminal, 0 when none",
        one(|e, _| int(e.process.tty))
    ),
    field!(
        "proc.env",
        Str,
        OptionalKey,
        "environment, or one variable with [NAME] (captured only when a rule uses it)",
        one(|e, arg| env_value(&e.process, arg))
    ),
    field!(
        "proc.duration",
        Int,
        None,
        "ns since the process started",
        one(|e, _| {
            let start = e.process.start_boot_ns;
            (start > 0).then(|| Value::Int(e.event.task.ts_boot_ns.saturating_sub(start) as i64))
        })
    ),
    field!(
        "proc.is_exe_from_memfd",
        Bool,
        None,
        "the executable is a memfd (fileless)",
        one(|e, _| Some(Value::Bool(e.process.exe_from_memfd)))
    ),
    field!(
        "proc.is_exe_upper_layer",
        Bool,
        None,
        "the executable lives in the writable upper layer of the overlay root (added after the container started)",
        one(|e, _| Some(Value::Bool(e.process.exe_upper_layer)))
    ),
    field!(
        "proc.exe_ino.ctime",
        Int,
        None,
        "change time of the executable (ns since the epoch)",
        one(|e, _| e.process.exe_ctime_ns.map(Value::Int))
    ),
    field!(
        "proc.exe_ino.mtime",
        Int,
        None,
        "modification time of the executable (ns since the epoch)",
        one(|e, _| e.process.exe_mtime_ns.map(Value::Int))
    ),
    field!(
        "proc.exe_ino.ctime_duration_proc_start",
        Int,
        None,
        "ns between the executable's change time and the process start",
        one(|e, _| {
            let ctime = e.process.exe_ctime_ns?;
            let start =
                e.time_ns - (e.event.task.ts_boot_ns as i64 - e.process.start_boot_ns as i64);
            Some(Value::Int(start - ctime))
        })
    ),
    field!(
        "proc.pname",
        Str,
        None,
        "parent name",
        one(|e, _| s(&parent(e)?.comm))
    ),
    field!(
        "proc.pexe",
        Str,
        None,
        "parent's first argument",
        one(|e, _| s(&parent(e)?.exe))
    ),
    field!(
        "proc.pexepath",
        Str,
        None,
        "parent's executable path",
        one(|e, _| nonempty(&parent(e)?.exepath))
    ),
    field!(
        "proc.pcmdline",
        Str,
        None,
        "parent's command line",
        one(|e, _| owned(parent(e)?.cmdline()))
    ),
    field!(
        "proc.sname",
        Str,
        None,
        "name of the session leader",
        one(|e, _| {
            let sid = e.process.sid;
            if sid == e.process.pid {
                return s(&e.process.comm);
            }
            e.ancestors
                .iter()
                .find(|p| p.pid == sid)
                .map(|p| Value::Str(Cow::Borrowed(p.comm.as_str())))
        })
    ),
    field!(
        "proc.aname",
        Str,
        OptionalIndex,
        "ancestor name: [n] is n levels up (0 = self); without an index, any ancestor",
        any(|e, arg| ancestors_by(e, arg, |p| s(&p.comm)))
    ),
    field!(
        "proc.apid",
        Int,
        OptionalIndex,
        "ancestor pid, as proc.aname",
        any(|e, arg| ancestors_by(e, arg, |p| int(p.pid)))
    ),
    field!(
        "proc.aexe",
        Str,
        OptionalIndex,
        "ancestor first argument, as proc.aname",
        any(|e, arg| ancestors_by(e, arg, |p| s(&p.exe)))
    ),
    field!(
        "proc.aexepath",
        Str,
        OptionalIndex,
        "ancestor executable path, as proc.aname",
        any(|e, arg| ancestors_by(e, arg, |p| nonempty(&p.exepath)))
    ),
    field!(
        "proc.acmdline",
        Str,
        OptionalIndex,
        "ancestor command line, as proc.aname",
        any(|e, arg| ancestors_by(e, arg, |p| owned(p.cmdline())))
    ),
    // thread.*
    field!(
        "thread.tid",
        Int,
        None,
        "thread id",
        one(|e, _| int(e.event.task.tid))
    ),
    field!(
        "thread.cap_effective",
        Str,
        None,
        "effective capabilities",
        one(|e, _| owned(render::capabilities(e.process.caps.effective)))
    ),
    field!(
        "thread.cap_permitted",
        Str,
        None,
        "permitted capabilities",
        one(|e, _| owned(render::capabilities(e.process.caps.permitted)))
    ),
    field!(
        "thread.cap_inheritable",
        Str,
        None,
        "inheritable capabilities",
        one(|e, _| owned(render::capabilities(e.process.caps.inheritable)))
    ),
    // user.* / group.*
    field!(
        "user.uid",
        Int,
        None,
        "real user id",
        one(|e, _| int(e.process.uid))
    ),
    field!(
        "user.name",
        Str,
        None,
        "user name",
        one(|e, _| e.user_name.as_deref().and_then(s))
    ),
    field!(
        "user.loginuid",
        Int,
        None,
        "audit login uid, -1 when unset",
        one(|e, _| int(e.process.loginuid.map_or(-1, i64::from)))
    ),
    field!(
        "user.loginname",
        Str,
        None,
        "name of the login user",
        one(|e, _| e.login_name.as_deref().and_then(s))
    ),
    field!(
        "group.gid",
        Int,
        None,
        "real group id",
        one(|e, _| int(e.process.gid))
    ),
    field!(
        "group.name",
        Str,
        None,
        "group name",
        one(|e, _| e.group_name.as_deref().and_then(s))
    ),
    // fd.*
    field!(
        "fd.num",
        Int,
        None,
        "the event's file descriptor",
        one(|e, _| int(e.fd.as_ref()?.num))
    ),
    field!(
        "fd.name",
        Str,
        None,
        "file path or client->server socket tuple",
        one(|e, _| nonempty(&fd(e)?.name))
    ),
    field!(
        "fd.nameraw",
        Str,
        None,
        "the path as the process passed it",
        one(|e, _| nonempty(&fd(e)?.nameraw))
    ),
    field!(
        "fd.directory",
        Str,
        None,
        "directory of a file",
        one(|e, _| s(fd(e)?.directory()?))
    ),
    field!(
        "fd.filename",
        Str,
        None,
        "file name without the directory (none for a failed open, as in Falco)",
        one(|e, _| s(e.fd.as_ref()?.filename()?))
    ),
    field!(
        "fd.type",
        Str,
        None,
        "file, directory, ipv4, ipv6, unix, pipe, ...",
        one(|e, _| s(fd(e)?.kind.name()))
    ),
    field!(
        "fd.typechar",
        Str,
        None,
        "one-letter fd type (f, 4, 6, u, p, ...)",
        one(|e, _| owned(fd(e)?.kind.typechar().to_string()))
    ),
    field!(
        "fd.sockfamily",
        Str,
        None,
        "ip or unix",
        one(|e, _| match fd(e)?.kind {
            FdType::Ipv4 | FdType::Ipv6 => s("ip"),
            FdType::Unix => s("unix"),
            _ => None,
        })
    ),
    field!(
        "fd.l4proto",
        Str,
        None,
        "tcp, udp, raw or unix",
        one(|e, _| s(fd(e)?.socket.as_ref()?.proto?.as_str()))
    ),
    field!(
        "fd.connected",
        Bool,
        None,
        "a connected socket",
        one(|e, _| {
            let socket = fd(e)?.socket.as_ref()?;
            Some(Value::Bool(socket.remote.is_some()))
        })
    ),
    field!(
        "fd.name_changed",
        Bool,
        None,
        "the event changed the fd's name (connect, accept, bind)",
        one(|e, _| {
            let call = e.event.syscall()?;
            Some(Value::Bool(
                call.succeeded()
                    && matches!(
                        call.spec.syscall,
                        syscalls::Syscall::Connect
                            | syscalls::Syscall::Bind
                            | syscalls::Syscall::Accept
                            | syscalls::Syscall::Accept4
                    ),
            ))
        })
    ),
    field!(
        "fd.cip",
        Ip,
        None,
        "client IP",
        one(|e, _| socket_ip(e, |s| s.client()))
    ),
    field!(
        "fd.sip",
        Ip,
        None,
        "server IP",
        one(|e, _| socket_ip(e, |s| s.server()))
    ),
    field!(
        "fd.lip",
        Ip,
        None,
        "local IP",
        one(|e, _| socket_ip(e, |s| s.local))
    ),
    field!(
        "fd.rip",
        Ip,
        None,
        "remote IP",
        one(|e, _| socket_ip(e, |s| s.remote))
    ),
    field!(
        "fd.ip",
        Ip,
        None,
        "client or server IP (matches either)",
        any(both_ips)
    ),
    field!(
        "fd.cport",
        Int,
        None,
        "client port",
        one(|e, _| socket_port(e, |s| s.client()))
    ),
    field!(
        "fd.sport",
        Int,
        None,
        "server port",
        one(|e, _| socket_port(e, |s| s.server()))
    ),
    field!(
        "fd.lport",
        Int,
        None,
        "local port",
        one(|e, _| socket_port(e, |s| s.local))
    ),
    field!(
        "fd.rport",
        Int,
        None,
        "remote port",
        one(|e, _| socket_port(e, |s| s.remote))
    ),
    field!(
        "fd.port",
        Int,
        None,
        "client or server port (matches either)",
        any(both_ports)
    ),
    field!(
        "fd.cnet",
        IpNet,
        None,
        "client IP, compared with networks",
        one(|e, _| socket_ip(e, |s| s.client()))
    ),
    field!(
        "fd.snet",
        IpNet,
        None,
        "server IP, compared with networks",
        one(|e, _| socket_ip(e, |s| s.server()))
    ),
    field!(
        "fd.lnet",
        IpNet,
        None,
        "local IP, compared with networks",
        one(|e, _| socket_ip(e, |s| s.local))
    ),
    field!(
        "fd.rnet",
        IpNet,
        None,
        "remote IP, compared with networks",
        one(|e, _| socket_ip(e, |s| s.remote))
    ),
    field!(
        "fd.net",
        IpNet,
        None,
        "client or server IP, compared with networks",
        any(both_ips)
    ),
    field!(
        "fd.cip.name",
        Str,
        None,
        "a domain name (mentioned by a rule) that resolves to the client IP",
        any(|e, _| ip_names(e, |s| s.client()))
    ),
    field!(
        "fd.sip.name",
        Str,
        None,
        "a domain name (mentioned by a rule) that resolves to the server IP",
        any(|e, _| ip_names(e, |s| s.server()))
    ),
    field!(
        "fd.lip.name",
        Str,
        None,
        "a domain name (mentioned by a rule) that resolves to the local IP",
        any(|e, _| ip_names(e, |s| s.local))
    ),
    field!(
        "fd.rip.name",
        Str,
        None,
        "a domain name (mentioned by a rule) that resolves to the remote IP",
        any(|e, _| ip_names(e, |s| s.remote))
    ),
    // container.* / k8s.*
    field!(
        "container.id",
        Str,
        None,
        "short container id (12 characters), or host",
        one(|e, _| s(e
            .process
            .container
            .as_ref()
            .map_or("host", |c| c.short_id())))
    ),
    field!(
        "container.full_id",
        Str,
        None,
        "full container id, or host",
        one(|e, _| s(e
            .process
            .container
            .as_ref()
            .map_or("host", |c| c.full_id.as_str())))
    ),
    field!(
        "container.type",
        Str,
        None,
        "docker, containerd, cri-o or podman",
        // The API server's `containerID` names the runtime exactly; the cgroup layout only
        // allows a guess for a bare id (containerd or cri-dockerd).
        one(|e, _| {
            let guessed = e.process.container.as_ref()?.runtime;
            s(meta(e).and_then(|m| m.runtime).unwrap_or(guessed).as_str())
        })
    ),
    field!(
        "container.name",
        Str,
        None,
        "container name",
        one(|e, _| s(meta(e)?.name.as_deref()?))
    ),
    field!(
        "container.image",
        Str,
        None,
        "image reference",
        one(|e, _| s(meta(e)?.image.as_deref()?))
    ),
    field!(
        "container.image.repository",
        Str,
        None,
        "image repository (no tag or digest)",
        one(|e, _| s(meta(e)?.image_repository.as_deref()?))
    ),
    field!(
        "container.image.tag",
        Str,
        None,
        "image tag",
        one(|e, _| s(meta(e)?.image_tag.as_deref()?))
    ),
    field!(
        "container.privileged",
        Bool,
        None,
        "the container runs privileged",
        one(|e, _| meta(e)?.privileged.map(Value::Bool))
    ),
    field!(
        "container.start_ts",
        Int,
        None,
        "container start time (ns since the epoch)",
        one(|e, _| meta(e)?.start_ts_ns.map(Value::Int))
    ),
    field!(
        "container.mounts",
        Str,
        None,
        "mounts as source:dest:mode:rw:propagation, comma-separated",
        one(|e, _| owned(meta(e)?.mounts_string()))
    ),
    field!(
        "container.mount.dest",
        Str,
        Key,
        "the mount whose destination matches [path or glob], as source:dest:mode:rw:propagation",
        one(|e, arg| {
            let FieldArg::Key(pattern) = arg else {
                return None;
            };
            let mount = meta(e)?.mount_dest_matches(pattern)?;
            owned(format!(
                "{}:{}:{}:{}:{}",
                mount.source, mount.dest, mount.mode, mount.rw, mount.propagation
            ))
        })
    ),
    field!(
        "k8s.pod.name",
        Str,
        None,
        "Kubernetes pod name",
        one(|e, _| s(meta(e)?.pod_name.as_deref()?))
    ),
    field!(
        "k8s.ns.name",
        Str,
        None,
        "Kubernetes namespace",
        one(|e, _| s(meta(e)?.pod_namespace.as_deref()?))
    ),
    field!(
        "k8s.pod.uid",
        Str,
        None,
        "Kubernetes pod uid",
        one(|e, _| s(meta(e)?.pod_uid.as_deref()?))
    ),
    field!(
        "k8s.pod.labels",
        Str,
        None,
        "Kubernetes pod labels as key:value, comma-separated (from the API server)",
        one(|e, _| {
            let meta = meta(e)?;
            (!meta.pod_labels.is_empty()).then(|| Value::Str(Cow::Owned(meta.pod_labels_string())))
        })
    ),
    field!(
        "k8s.pod.label",
        Str,
        Key,
        "the Kubernetes pod label [key] (from the API server); also k8s.pod.label.<key>",
        one(|e, arg| {
            let FieldArg::Key(key) = arg else {
                return None;
            };
            s(meta(e)?.pod_labels.get(key)?)
        })
    ),
];

/// Fields whose key Falco also accepts after a dot (`k8s.pod.label.app`); the condition
/// grammar reads such a name as one field name.
const DOTTED_KEY_FIELDS: [&str; 1] = ["k8s.pod.label"];

/// Every field plus the parameter families, for listings.
pub fn all_fields() -> impl Iterator<Item = &'static FieldDef> {
    FIELDS.iter().chain([&EVT_ARG_NAMED, &EVT_RAWARG])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_fields_and_arguments() {
        let (def, arg) = lookup("proc.aname", Some("2")).unwrap();
        assert_eq!(def.name, "proc.aname");
        assert_eq!(arg, FieldArg::Index(2));
        let (_, arg) = lookup("evt.arg.flags", None).unwrap();
        assert_eq!(arg, FieldArg::Param("flags"));
        assert_eq!(
            lookup("evt.arg.nosuch", None).unwrap_err(),
            FieldError::UnknownParam("nosuch".into())
        );
        assert_eq!(
            lookup("proc.nosuch", None).unwrap_err(),
            FieldError::Unknown("proc.nosuch".into())
        );
        assert!(lookup("evt.buffer", None).is_ok());
        assert!(matches!(
            lookup("proc.aname", Some("x")),
            Err(FieldError::BadArg { .. })
        ));
        assert!(matches!(
            lookup("container.mount.dest", None),
            Err(FieldError::BadArg { .. })
        ));
        assert!(matches!(
            lookup("proc.name", Some("1")),
            Err(FieldError::BadArg { .. })
        ));
        let (def, arg) = lookup("k8s.pod.label", Some("app.kubernetes.io/name")).unwrap();
        assert_eq!(def.name, "k8s.pod.label");
        assert_eq!(arg, FieldArg::Key("app.kubernetes.io/name".into()));
        let (def, arg) = lookup("k8s.pod.label.app", None).unwrap();
        assert_eq!(def.name, "k8s.pod.label");
        assert_eq!(arg, FieldArg::Key("app".into()));
        assert!(matches!(
            lookup("k8s.pod.label", None),
            Err(FieldError::BadArg { .. })
        ));
        assert!(lookup("k8s.pod.labels", None).is_ok());
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = all_fields().map(|f| f.name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
