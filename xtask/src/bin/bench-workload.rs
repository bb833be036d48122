//! `bench-workload`: the programs `cargo xtask bench` times under each observer.
//!
//! Every workload does a fixed amount of work, times itself with the monotonic clock (so the
//! program's own start-up is not counted) and prints one line of `key=value` pairs on stdout:
//! `elapsed_ns`, `markers` (how many times it opened the marker file, which the benchmark's
//! marker rule alerts on) and workload-specific counts. Nothing in the timed loops allocates
//! beyond what the syscalls need, and no interpreter is involved.
//!
//! `hold` is not timed: it forks sleeping children to fill the agent's process table, prints
//! `ready`, and kills and reaps them all when its stdin closes.

use std::{
    ffi::CString,
    fs::File,
    io::{self, BufRead as _, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

/// Workloads for `cargo xtask bench`.
#[derive(Parser)]
#[command(name = "bench-workload", version)]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Rounds of openat+read+close of a small file and a loopback TCP connect (socket, connect,
    /// accept, close both ends); every 100 rounds a fork+exec of /bin/true and an open of the
    /// marker file.
    SyscallStorm {
        #[arg(long)]
        rounds: u64,
        /// The small file opened and read every round.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        marker: PathBuf,
    },
    /// fork+exec of /bin/true, waited for, in a loop; the marker file is opened every 10 execs.
    ExecStorm {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        marker: PathBuf,
    },
    /// Loopback TCP connects (socket, connect, accept, close both ends) in a loop; the marker
    /// file is opened every 100 connects.
    ConnectStorm {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        marker: PathBuf,
    },
    /// A realistic mix: unpack a source tarball with tar+gzip, then build it with make and gcc.
    Mix {
        /// The tarball `prepare-mix` wrote.
        #[arg(long)]
        tarball: PathBuf,
        /// An empty directory to unpack into (the caller removes it afterwards).
        #[arg(long)]
        into: PathBuf,
        /// make's -j.
        #[arg(long, default_value_t = 2)]
        jobs: u32,
        #[arg(long)]
        marker: PathBuf,
    },
    /// Generates the source tree `mix` builds (C files and a Makefile) and packs it into
    /// `<dir>/src.tar.gz`.
    PrepareMix {
        #[arg(long)]
        dir: PathBuf,
        /// How many C files.
        #[arg(long, default_value_t = 24)]
        files: u32,
    },
    /// Forks `count` children that sleep until killed; prints `ready` once all exist, then
    /// kills and reaps them when stdin reaches end of file.
    Hold {
        #[arg(long)]
        count: u32,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().workload) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-workload: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(workload: Workload) -> Result<()> {
    match workload {
        Workload::SyscallStorm {
            rounds,
            data,
            marker,
        } => syscall_storm(rounds, &data, &marker),
        Workload::ExecStorm { count, marker } => exec_storm(count, &marker),
        Workload::ConnectStorm { count, marker } => connect_storm(count, &marker),
        Workload::Mix {
            tarball,
            into,
            jobs,
            marker,
        } => mix(&tarball, &into, jobs, &marker),
        Workload::PrepareMix { dir, files } => prepare_mix(&dir, files),
        Workload::Hold { count } => hold(count),
    }
}

/// Prints the result line.
fn report(started: Instant, markers: u64, extra: &[(&str, u64)]) -> Result<()> {
    let elapsed = started.elapsed().as_nanos();
    let mut line = format!("elapsed_ns={elapsed} markers={markers}");
    for (key, value) in extra {
        line.push_str(&format!(" {key}={value}"));
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").context("writing the result")?;
    out.flush().context("writing the result")
}

fn open_marker(marker: &Path) -> Result<()> {
    drop(File::open(marker).with_context(|| format!("opening {}", marker.display()))?);
    Ok(())
}

fn syscall_storm(rounds: u64, data: &Path, marker: &Path) -> Result<()> {
    let listener = Loopback::new()?;
    let spawner = Spawner::new("/bin/true")?;
    let mut buf = [0u8; 4096];
    let mut markers = 0;
    let mut execs = 0;
    let started = Instant::now();
    for round in 1..=rounds {
        // File::open is openat(2), read is read(2), drop is close(2).
        let mut file = File::open(data).with_context(|| format!("opening {}", data.display()))?;
        let _ = file.read(&mut buf).context("reading the data file")?;
        drop(file);
        listener.connect_once()?;
        if round % 100 == 0 {
            spawner.run()?;
            execs += 1;
            open_marker(marker)?;
            markers += 1;
        }
    }
    report(
        started,
        markers,
        &[("rounds", rounds), ("connects", rounds), ("execs", execs)],
    )
}

fn exec_storm(count: u64, marker: &Path) -> Result<()> {
    let spawner = Spawner::new("/bin/true")?;
    let mut markers = 0;
    let started = Instant::now();
    for n in 1..=count {
        spawner.run()?;
        if n % 10 == 0 {
            open_marker(marker)?;
            markers += 1;
        }
    }
    report(started, markers, &[("execs", count)])
}

fn connect_storm(count: u64, marker: &Path) -> Result<()> {
    let listener = Loopback::new()?;
    let mut markers = 0;
    let started = Instant::now();
    for n in 1..=count {
        listener.connect_once()?;
        if n % 100 == 0 {
            open_marker(marker)?;
            markers += 1;
        }
    }
    report(started, markers, &[("connects", count)])
}

fn mix(tarball: &Path, into: &Path, jobs: u32, marker: &Path) -> Result<()> {
    let started = Instant::now();
    open_marker(marker)?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(into)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -xzf {} failed ({status})", tarball.display());
    }
    let status = Command::new("make")
        .arg("-s")
        .arg(format!("-j{jobs}"))
        .arg("-C")
        .arg(into.join("src"))
        .status()
        .context("running make")?;
    if !status.success() {
        bail!("make in {} failed ({status})", into.join("src").display());
    }
    open_marker(marker)?;
    report(started, 2, &[])
}

/// A TCP listener on 127.0.0.1 that this thread connects to and accepts from.
struct Loopback {
    listener: TcpListener,
    addr: std::net::SocketAddr,
}

impl Loopback {
    fn new() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr().context("listener address")?;
        Ok(Loopback { listener, addr })
    }

    /// socket+connect, accept, then close both ends. The accepted end is closed first with
    /// SO_LINGER 0 (a reset), so no TIME_WAIT entry is left to exhaust the ephemeral ports.
    fn connect_once(&self) -> Result<()> {
        let client = TcpStream::connect(self.addr).context("connecting over loopback")?;
        let (server, _) = self.listener.accept().context("accepting")?;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the fd is open for the duration of the call and `linger` outlives it.
        unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(server);
        drop(client);
        Ok(())
    }
}

/// fork(2) + execv(2) of one program without arguments, prepared once so the child only makes
/// async-signal-safe calls.
struct Spawner {
    path: CString,
    argv: [*const libc::c_char; 2],
}

impl Spawner {
    fn new(path: &str) -> Result<Self> {
        let path = CString::new(path).context("program path")?;
        let argv = [path.as_ptr(), std::ptr::null()];
        Ok(Spawner { path, argv })
    }

    /// Forks, execs the program in the child, and waits for it; fails unless it exits 0.
    fn run(&self) -> Result<()> {
        // SAFETY: the child only calls execv and _exit, which are async-signal-safe, on memory
        // prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error()).context("fork");
        }
        if pid == 0 {
            // SAFETY: see above; `argv` is NULL-terminated and points into `self.path`.
            unsafe {
                libc::execv(self.path.as_ptr(), self.argv.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Err(io::Error::last_os_error()).context("waitpid");
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!(
                "{} exited with status {status}",
                self.path.to_string_lossy()
            );
        }
        Ok(())
    }
}

fn prepare_mix(dir: &Path, files: u32) -> Result<()> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    let write = |name: &str, text: String| -> Result<()> {
        let path = src.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    let mut objects = Vec::new();
    let mut calls = String::new();
    for i in 0..files {
        // Enough code per file that gcc has real work (parsing, optimising) to do.
        let mut body = format!("#include \"common.h\"\n\nlong unit_{i}(long seed) {{\n");
        body.push_str("    long acc = seed;\n");
        for j in 0..40 {
            body.push_str(&format!(
                "    acc = mix(acc, {j}L) ^ (acc >> {}) ;\n    if (acc % {} == 0) acc += table[{}];\n",
                j % 13 + 1,
                j + 3,
                j % 16
            ));
        }
        body.push_str("    return acc;\n}\n");
        write(&format!("unit_{i}.c"), body)?;
        objects.push(format!("unit_{i}.o"));
        calls.push_str(&format!("    total += unit_{i}(total);\n"));
    }
    write(
        "common.h",
        concat!(
            "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n",
            "static const long table[16] = {3,1,4,1,5,9,2,6,5,3,5,8,9,7,9,3};\n",
            "static inline long mix(long a, long b) { return (a * 6364136223846793005L) + b; }\n",
        )
        .to_owned(),
    )?;
    let mut main = String::from("#include \"common.h\"\n");
    for i in 0..files {
        main.push_str(&format!("long unit_{i}(long);\n"));
    }
    main.push_str("int main(void) {\n    long total = 1;\n");
    main.push_str(&calls);
    main.push_str("    printf(\"%ld\\n\", total);\n    return 0;\n}\n");
    write("main.c", main)?;
    objects.push("main.o".to_owned());
    write(
        "Makefile",
        format!(
            "CFLAGS = -O2 -Wall\nOBJS = {}\n\nprogram: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n\
             %.o: %.c common.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n",
            objects.join(" ")
        ),
    )?;
    let tarball = dir.join("src.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .arg("src")
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -czf {} failed ({status})", tarball.display());
    }
    std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    println!("tarball={}", tarball.display());
    Ok(())
}

fn hold(count: u32) -> Result<()> {
    // Own process group, so the whole group can be killed by its id; die with the caller.
    // SAFETY: plain syscalls without pointers.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let mut children = Vec::with_capacity(count as usize);
    for _ in 0..count {
        // SAFETY: the child only calls prctl, pause and _exit, which are async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let err = io::Error::last_os_error();
            kill_all(&children);
            return Err(err).with_context(|| format!("fork after {} children", children.len()));
        }
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                loop {
                    libc::pause();
                }
            }
        }
        children.push(pid);
    }
    println!("ready children={}", children.len());
    io::stdout().flush().context("writing ready")?;
    // Wait for the caller to close stdin (or die).
    let mut line = String::new();
    let stdin = io::stdin();
    let mut lock = stdin.lock();
    while lock.read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
    kill_all(&children);
    Ok(())
}

/// Kills and reaps the given children.
fn kill_all(children: &[libc::pid_t]) {
    for &pid in children {
        // SAFETY: plain syscall on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    for &pid in children {
        let mut status = 0;
        // SAFETY: our own child; `status` is a valid out pointer.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
        }
    }
}
