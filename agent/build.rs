//! Compiles the eBPF programs in `agent-ebpf` for the BPF target and places the object in
//! `OUT_DIR`, where `probes::loader` embeds it.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, bail};

const EBPF_PACKAGE: &str = "agent-ebpf";
const EBPF_OBJECT: &str = "vigil-probes";

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // Lets clippy and docs run without the BPF toolchain; the binary refuses to load probes.
        fs::write(out_dir.join(EBPF_OBJECT), b"").context("writing the empty probe object")?;
        return Ok(());
    }
    if !on_path("bpf-linker") {
        bail!(
            "bpf-linker is not installed; run `cargo xtask bootstrap` once (as root) to install \
             the eBPF toolchain, or set AYA_BUILD_SKIP=1 to build without probes"
        );
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let root = manifest_dir
        .parent()
        .context("agent crate has no parent directory")?
        .join(EBPF_PACKAGE);
    let root = root.to_str().context("eBPF crate path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs (run `cargo xtask bootstrap` if the toolchain is missing)",
    )?;
    println!("cargo:rerun-if-changed=../agent-common/src");
    Ok(())
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
