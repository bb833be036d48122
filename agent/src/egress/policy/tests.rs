//! Loader tests: the model built from good files, and each error with its exact position.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

const FILE: &str = "p.yaml";

fn parse(text: &str) -> Result<PolicySet, Vec<PolicyError>> {
    PolicySet::parse(text, Path::new(FILE))
}

fn parse_ok(text: &str) -> PolicySet {
    match parse(text) {
        Ok(set) => set,
        Err(errors) => panic!("unexpected errors: {:#?}", strings(&errors)),
    }
}

fn strings(errors: &[PolicyError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// Every error of `text`, rendered as `p.yaml:line:col: message`.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(set) => panic!("expected errors, parsed {set:#?}"),
        Err(errors) => strings(&errors),
    }
}

/// The only error of `text`.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap_or_default()
}

fn at(line: u32, column: u32) -> Location {
    Location {
        file: PathBuf::from(FILE),
        line,
        column,
    }
}

fn cidr(s: &str) -> Destination {
    Destination::Cidr(s.parse().unwrap())
}

fn host(s: &str) -> Destination {
    Destination::Host(s.parse().unwrap())
}

fn strs(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

const EXAMPLE: &str = r#"- policy: web-frontend
  mode: enforce            # monitor | enforce (default monitor)
  match:                   # which workloads; all fields optional, all given must hold
    container.image.repository: registry.example/web
    k8s.ns.name: shop
    proc.name: [nginx, node]     # a value or a list (any of)
  allow:
    - cidr: 10.20.0.0/16
      ports: [5432]
    - host: "*.payments.example.com"
      ports: [443, "8000-8080"]
      protocol: tcp
    - cidr: 0.0.0.0/0
      ports: [53]
      protocol: udp
    - cidr: "2001:db8::/32"
- default:
    mode: monitor
    allow:
      - host: Updates.Example.com.
"#;

#[test]
fn example_parses_to_the_model() {
    let set = parse_ok(EXAMPLE);
    let expected = PolicySet {
        policies: vec![Policy {
            name: "web-frontend".to_owned(),
            mode: Mode::Enforce,
            matcher: WorkloadMatch {
                container_image_repository: strs(&["registry.example/web"]),
                k8s_ns_name: strs(&["shop"]),
                proc_name: strs(&["nginx", "node"]),
                ..WorkloadMatch::default()
            },
            allow: vec![
                AllowRule {
                    destination: cidr("10.20.0.0/16"),
                    ports: vec![PortRange::single(5432)],
                    protocol: Protocol::Any,
                    at: at(8, 7),
                },
                AllowRule {
                    destination: host("*.payments.example.com"),
                    ports: vec![PortRange::single(443), PortRange { lo: 8000, hi: 8080 }],
                    protocol: Protocol::Tcp,
                    at: at(10, 7),
                },
                AllowRule {
                    destination: cidr("0.0.0.0/0"),
                    ports: vec![PortRange::single(53)],
                    protocol: Protocol::Udp,
                    at: at(13, 7),
                },
                AllowRule {
                    destination: cidr("2001:db8::/32"),
                    ports: vec![],
                    protocol: Protocol::Any,
                    at: at(16, 7),
                },
            ],
            at: at(1, 3),
        }],
        default: Some(Policy {
            name: "default".to_owned(),
            mode: Mode::Monitor,
            matcher: WorkloadMatch::default(),
            allow: vec![AllowRule {
                destination: host("updates.example.com"),
                ports: vec![],
                protocol: Protocol::Any,
                at: at(20, 9),
            }],
            at: at(17, 3),
        }),
    };
    assert_eq!(set, expected);
    assert_eq!(set.get("web-frontend"), Some(&expected.policies[0]));
    assert_eq!(set.get("default"), expected.default.as_ref());
    assert_eq!(set.get("nope"), None);
    assert!(set.policies[0].matcher.needs_container_metadata());
    let rule = &set.policies[0].allow[1];
    assert!(rule.allows_port(8042) && !rule.allows_port(80));
    assert!(set.policies[0].allow[3].allows_port(1));
    assert_eq!(rule.destination.to_string(), "*.payments.example.com");
    assert_eq!(set.policies[0].at.to_string(), "p.yaml:1:3");
}

#[test]
fn minimal_policies_take_the_defaults() {
    let set = parse_ok("- policy: a\n  allow: []\n- policy: b\n  match: {}\n  allow: []\n");
    for (policy, name) in set.policies.iter().zip(["a", "b"]) {
        assert_eq!(policy.name, name);
        assert_eq!(policy.mode, Mode::Monitor);
        assert!(policy.matcher.is_empty());
        assert!(!policy.matcher.needs_container_metadata());
        assert!(policy.allow.is_empty());
    }
    assert_eq!(set.default, None);
}

#[test]
fn empty_files_and_documents_are_empty_sets() {
    for text in [
        "",
        "# nothing yet\n",
        "---\n",
        "~\n",
        "[]\n",
        "---\n...\n---\n[]\n",
    ] {
        assert_eq!(parse_ok(text), PolicySet::empty(), "{text:?}");
    }
}

#[test]
fn every_document_of_a_file_is_read() {
    let set = parse_ok("- policy: a\n  allow: []\n---\n- policy: b\n  allow: []\n");
    let names: Vec<_> = set
        .policies
        .iter()
        .map(|p| (p.name.as_str(), p.at.line))
        .collect();
    assert_eq!(names, [("a", 1), ("b", 4)]);
}

#[test]
fn flow_style_is_positioned_too() {
    let set = parse_ok("- {policy: a, allow: [{cidr: 10.0.0.1, ports: 22}, {host: x.io}]}\n");
    let allow = &set.policies[0].allow;
    assert_eq!(allow[0].destination, cidr("10.0.0.1/32"));
    assert_eq!(allow[0].ports, [PortRange::single(22)]);
    assert_eq!((allow[0].at.line, allow[0].at.column), (1, 23));
    assert_eq!((allow[1].at.line, allow[1].at.column), (1, 52));
}

#[test]
fn file_shape_errors() {
    assert_eq!(
        error("policy: a\nallow: []\n"),
        "p.yaml:1:1: expected a list of policies, found a mapping; start each policy with `- `"
    );
    assert_eq!(
        error("just text\n"),
        "p.yaml:1:1: expected a list of policies, found `just text`"
    );
    assert_eq!(
        errors("- web\n- [a]\n- name: x\n  allow: []\n- {}\n"),
        [
            "p.yaml:1:3: expected a policy (`policy: <name>` and its settings) or `default:`, \
             found `web`",
            "p.yaml:2:3: expected a policy (`policy: <name>` and its settings) or `default:`, \
             found a list",
            "p.yaml:3:3: expected `policy: <name>` or `default:` to start an item, found `name`",
            "p.yaml:5:3: expected `policy: <name>` or `default:` to start an item, found an \
             empty mapping",
        ]
    );
    assert_eq!(
        error(&format!("- {}\n", "x".repeat(50))),
        format!(
            "p.yaml:1:3: expected a policy (`policy: <name>` and its settings) or `default:`, \
             found `{}…`",
            "x".repeat(40)
        )
    );
    assert_eq!(
        error("- |\n  first line\n  second line\n"),
        "p.yaml:1:3: expected a policy (`policy: <name>` and its settings) or `default:`, found \
         `first line…`"
    );
    assert_eq!(
        error("- policy: a\n  default:\n    allow: []\n  allow: []\n"),
        "p.yaml:2:3: an item is either a named `policy` or the `default`, not both"
    );
}

#[test]
fn yaml_syntax_errors_are_positioned() {
    assert_eq!(
        error("- policy: a\n  allow: []\n   mode: enforce\n"),
        "p.yaml:3:4: did not find expected key while parsing a block mapping (started at line 1, \
         column 3)"
    );
}

#[test]
fn unknown_and_duplicate_keys() {
    assert_eq!(
        error("- policy: a\n  allow: []\n  modes: enforce\n"),
        "p.yaml:3:3: unknown key `modes` in a policy; expected `policy`, `mode`, `match` or \
         `allow`"
    );
    assert_eq!(
        error("- policy: a\n  match:\n    container.image: nginx\n  allow: []\n"),
        "p.yaml:3:5: unknown key `container.image` in `match`; expected `container.id`, \
         `container.name`, `container.image.repository`, `k8s.ns.name`, `k8s.pod.name`, \
         `proc.name` or `cgroup`"
    );
    assert_eq!(
        error("- policy: a\n  allow:\n    - cidr: 10.0.0.0/8\n      port: 22\n"),
        "p.yaml:4:7: unknown key `port` in an `allow` rule; expected `cidr`, `host`, `ports` or \
         `protocol`"
    );
    assert_eq!(
        error("- default:\n    allow: []\n    enforce: true\n"),
        "p.yaml:3:5: unknown key `enforce` in the default policy; expected `mode`, `match` or \
         `allow`"
    );
    assert_eq!(
        error("- default:\n    allow: []\n  mode: enforce\n"),
        "p.yaml:3:3: unexpected `mode` beside `default`; the default policy's settings go under \
         `default:`"
    );
    assert_eq!(
        error("- policy: a\n  mode: enforce\n  allow: []\n  mode: monitor\n"),
        "p.yaml:4:3: duplicate key `mode` (first at line 2, column 3)"
    );
    assert_eq!(
        error("- policy: a\n  allow: []\n  [x]: y\n"),
        "p.yaml:3:3: expected a key name, found a list"
    );
}

#[test]
fn mode_errors() {
    assert_eq!(
        error("- policy: a\n  mode: block\n  allow: []\n"),
        "p.yaml:2:9: unknown mode `block`: expected `monitor` or `enforce`"
    );
    assert_eq!(
        error("- policy: a\n  mode: [enforce]\n  allow: []\n"),
        "p.yaml:2:9: expected `monitor` or `enforce`, found a list"
    );
}

#[test]
fn policy_name_errors() {
    assert_eq!(
        error("- policy: web frontend\n  allow: []\n"),
        "p.yaml:1:11: invalid policy name `web frontend`: use 1-63 letters, digits, `-`, `_` \
         and `.`"
    );
    assert_eq!(
        error("- policy: \"\"\n  allow: []\n"),
        "p.yaml:1:11: invalid policy name ``: use 1-63 letters, digits, `-`, `_` and `.`"
    );
    assert_eq!(
        error("- policy:\n  allow: []\n"),
        "p.yaml:1:10: expected a policy name, found nothing"
    );
    assert_eq!(
        error("- policy: default\n  allow: []\n"),
        "p.yaml:1:11: `default` is reserved for the default policy; write it as `- default:`, \
         or choose another name"
    );
    assert_eq!(
        error("- policy: a\n  allow: []\n- policy: b\n  allow: []\n- policy: a\n  allow: []\n"),
        "p.yaml:5:11: policy `a` is already defined at p.yaml:1:3"
    );
    let name = "n".repeat(63);
    parse_ok(&format!("- policy: {name}\n  allow: []\n"));
    assert!(error(&format!("- policy: {name}x\n  allow: []\n")).contains("invalid policy name"));
}

#[test]
fn allow_list_errors() {
    assert_eq!(
        error("- policy: a\n  mode: enforce\n"),
        "p.yaml:1:3: policy `a` has no `allow` list; write `allow: []` to allow nothing but \
         loopback"
    );
    assert_eq!(
        error("- default:\n    mode: enforce\n"),
        "p.yaml:2:5: the default policy has no `allow` list; write `allow: []` to allow nothing \
         but loopback"
    );
    assert_eq!(
        error("- policy: a\n  allow:\n"),
        "p.yaml:2:9: expected a list of allowed destinations (`allow: []` for none), found \
         nothing"
    );
    assert_eq!(
        error("- policy: a\n  allow:\n    cidr: 10.0.0.0/8\n"),
        "p.yaml:3:5: expected a list of allowed destinations (`allow: []` for none), found a \
         mapping"
    );
    assert_eq!(
        error("- policy: a\n  allow:\n    - 10.0.0.0/8\n"),
        "p.yaml:3:7: expected a mapping for an `allow` rule, found `10.0.0.0/8`"
    );
    assert_eq!(
        error("- policy: a\n  allow:\n    - cidr: 10.0.0.0/8\n      host: a.example\n"),
        "p.yaml:4:7: a rule allows either a `cidr` or a `host`, not both; write two rules"
    );
    assert_eq!(
        error("- policy: a\n  allow:\n    - ports: [22]\n"),
        "p.yaml:3:7: an `allow` rule needs a `cidr` or a `host`"
    );
}

#[test]
fn cidrs() {
    let rule = |c: &str| format!("- policy: a\n  allow:\n    - cidr: {c}\n");
    let only = |c: &str| parse_ok(&rule(c)).policies[0].allow[0].destination.clone();
    assert_eq!(only("10.0.0.7"), cidr("10.0.0.7/32"));
    assert_eq!(only("\"2001:db8::1\""), cidr("2001:db8::1/128"));
    assert_eq!(only("\"::/0\""), cidr("::/0"));
    assert_eq!(only("192.168.0.0/24"), cidr("192.168.0.0/24"));

    assert_eq!(
        error(&rule("10.20.1.0/16")),
        "p.yaml:3:13: `10.20.1.0/16` has host bits set; did you mean `10.20.0.0/16`?"
    );
    assert_eq!(
        error(&rule("\"2001:db8::1/32\"")),
        "p.yaml:3:13: `2001:db8::1/32` has host bits set; did you mean `2001:db8::/32`?"
    );
    assert_eq!(
        error(&rule("10.0.0.0/33")),
        "p.yaml:3:13: `10.0.0.0/33` has an invalid prefix length `/33`: expected 0-32 for an \
         IPv4 address"
    );
    assert_eq!(
        error(&rule("\"::/x\"")),
        "p.yaml:3:13: `::/x` has an invalid prefix length `/x`: expected 0-128 for an IPv6 \
         address"
    );
    assert_eq!(
        error(&rule("10.0.0")),
        "p.yaml:3:13: `10.0.0` is not a CIDR: expected an address or address/prefix, such as \
         `10.0.0.0/8` or `2001:db8::/32`"
    );
    assert_eq!(
        error(&rule("db.example.com")),
        "p.yaml:3:13: `db.example.com` is a host name, not a CIDR; write it as `host: \
         db.example.com`"
    );
    assert_eq!(
        error(&rule("[10.0.0.0/8]")),
        "p.yaml:3:13: expected a CIDR such as `10.0.0.0/8`, found a list"
    );
}

#[test]
fn hosts() {
    let rule = |h: &str| format!("- policy: a\n  allow:\n    - host: {h}\n");
    assert_eq!(
        parse_ok(&rule("\"*.CDN.example.net.\"")).policies[0].allow[0].destination,
        host("*.cdn.example.net")
    );
    assert_eq!(
        error(&rule("10.1.2.3")),
        "p.yaml:3:13: `10.1.2.3` is an IP address, not a host name; write it as `cidr: 10.1.2.3`"
    );
    assert_eq!(
        error(&rule("\"::1\"")),
        "p.yaml:3:13: `::1` is an IP address, not a host name; write it as `cidr: ::1`"
    );
    assert_eq!(
        error(&rule("\"api.*.example.com\"")),
        "p.yaml:3:13: `api.*.example.com` has a misplaced `*`: a wildcard is the whole leftmost \
         label, as in `*.example.com`"
    );
    assert_eq!(
        error(&rule("a..example.com")),
        "p.yaml:3:13: `a..example.com` has an empty label"
    );
    assert_eq!(
        error(&rule("ex!ample.com")),
        "p.yaml:3:13: `ex!ample.com` contains `!`; labels hold only letters, digits, `-` and `_`"
    );
}

#[test]
fn ports_and_protocols() {
    let rule = |p: &str| format!("- policy: a\n  allow:\n    - cidr: 10.0.0.0/8\n      {p}\n");
    let only = |p: &str| parse_ok(&rule(p)).policies[0].allow[0].clone();
    assert_eq!(only("ports: 443").ports, [PortRange::single(443)]);
    assert_eq!(
        only("ports: 1000-2000").ports,
        [PortRange { lo: 1000, hi: 2000 }]
    );
    assert_eq!(
        only("ports: [\"22\", 80-81]").ports,
        [PortRange::single(22), PortRange { lo: 80, hi: 81 }]
    );
    assert_eq!(only("protocol: udp").protocol, Protocol::Udp);
    assert_eq!(only("protocol: any").protocol, Protocol::Any);

    assert_eq!(
        error(&rule("ports: [0]")),
        "p.yaml:4:15: port 0 cannot be connected to: ports are 1-65535"
    );
    assert_eq!(
        error(&rule("ports: [443, 65536]")),
        "p.yaml:4:20: port 65536 is out of range: ports are 1-65535"
    );
    assert_eq!(
        error(&rule("ports: [\"9000-8000\"]")),
        "p.yaml:4:15: range `9000-8000` is reversed; write `8000-9000`"
    );
    assert_eq!(
        error(&rule("ports: [https]")),
        "p.yaml:4:15: `https` is not a port: expected a number 1-65535 or a range such as \
         `8000-8080`"
    );
    assert_eq!(
        error(&rule("ports: []")),
        "p.yaml:4:14: an empty `ports` list allows no port; remove `ports` to allow every port"
    );
    assert_eq!(
        error(&rule("ports: [[80]]")),
        "p.yaml:4:15: expected a port or a range such as `8000-8080`, found a list"
    );
    assert_eq!(
        error(&rule("protocol: icmp")),
        "p.yaml:4:17: unknown protocol `icmp`: expected `tcp`, `udp` or `any`"
    );
}

#[test]
fn match_values_are_normalized() {
    let full = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef";
    let text = format!(
        "- policy: a\n  match:\n    container.id: [{full}, 0123456789ab]\n    \
         container.name: web-1\n    container.image.repository: registry:5000/team/web\n    \
         k8s.pod.name: [web-0, web-1]\n    proc.name: kworker/0:1\n    \
         cgroup: [/system.slice/nginx.service/, kubepods.slice]\n  allow: []\n"
    );
    let m = parse_ok(&text).policies.remove(0).matcher;
    assert_eq!(
        m,
        WorkloadMatch {
            container_id: strs(&["0123456789ab", "0123456789ab"]),
            container_name: strs(&["web-1"]),
            container_image_repository: strs(&["registry:5000/team/web"]),
            k8s_ns_name: vec![],
            k8s_pod_name: strs(&["web-0", "web-1"]),
            proc_name: strs(&["kworker/0:1"]),
            cgroup: strs(&["system.slice/nginx.service", "kubepods.slice"]),
        }
    );
    assert!(!m.is_empty());
    assert!(m.needs_container_metadata());

    let kernel_only = parse_ok(
        "- policy: a\n  match:\n    container.id: 0123456789ab\n    proc.name: curl\n    \
         cgroup: user.slice\n  allow: []\n",
    )
    .policies
    .remove(0)
    .matcher;
    assert!(!kernel_only.is_empty());
    assert!(!kernel_only.needs_container_metadata());
}

#[test]
fn match_value_errors() {
    let with = |key: &str, value: &str| {
        error(&format!(
            "- policy: a\n  match:\n    {key}: {value}\n  allow: []\n"
        ))
    };
    assert_eq!(
        with("container.id", "0123456789a"),
        "p.yaml:3:19: `0123456789a` is not a container id: expected 12 or 64 hex characters"
    );
    assert_eq!(
        with("container.id", "[0123456789ab, 0123456789ag]"),
        "p.yaml:3:34: `0123456789ag` is not a container id: expected 12 or 64 hex characters"
    );
    assert_eq!(
        with("proc.name", "my-long-daemon-name"),
        "p.yaml:3:16: `my-long-daemon-name` is 19 bytes long, but the kernel keeps only the \
         first 15 bytes of a process name (`comm`); write `my-long-daemon-`, knowing that it \
         also selects any other process whose name starts with it"
    );
    assert_eq!(
        with("proc.name", "/usr/sbin/nginx"),
        "p.yaml:3:16: `/usr/sbin/nginx` is a path; `proc.name` is the process name the kernel \
         keeps (`comm`), such as `nginx`"
    );
    assert_eq!(
        with("container.image.repository", "registry.example/web:1.25"),
        "p.yaml:3:33: `registry.example/web:1.25` includes a tag; \
         `container.image.repository` is the image name alone: `registry.example/web`"
    );
    assert_eq!(
        with("container.image.repository", "nginx:1.25@sha256:abc"),
        "p.yaml:3:33: `nginx:1.25@sha256:abc` includes a digest; \
         `container.image.repository` is the image name alone: `nginx`"
    );
    assert_eq!(
        with("proc.name", "/usr/local/bin/envoy-proxy-sidecar/"),
        "p.yaml:3:16: `/usr/local/bin/envoy-proxy-sidecar/` is a path; `proc.name` is the \
         process name the kernel keeps (`comm`), such as `envoy-proxy-sid`"
    );
    assert_eq!(
        with("cgroup", "/"),
        "p.yaml:3:13: `/` is the cgroup root, which holds every process; remove `cgroup` to \
         leave it unconstrained"
    );
    assert_eq!(
        with("cgroup", "/sys/fs/cgroup/system.slice"),
        "p.yaml:3:13: `/sys/fs/cgroup/system.slice` includes the cgroup mount point; write the \
         path below it: `system.slice`"
    );
    assert_eq!(
        with("cgroup", "system.slice/../user.slice"),
        "p.yaml:3:13: `system.slice/../user.slice` contains `..`; write the path from the \
         cgroup root"
    );
    assert_eq!(
        with("cgroup", "a//b"),
        "p.yaml:3:13: `a//b` has an empty path component"
    );
    assert_eq!(
        with("k8s.ns.name", "\" shop\""),
        "p.yaml:3:18: ` shop` starts or ends with whitespace"
    );
    assert_eq!(with("k8s.ns.name", "''"), "p.yaml:3:18: the value is empty");
    assert_eq!(
        with("k8s.ns.name", ""),
        "p.yaml:3:17: expected a value, found nothing"
    );
    assert_eq!(
        with("k8s.ns.name", "{a: b}"),
        "p.yaml:3:18: expected a value, found a mapping"
    );
    assert_eq!(
        with("proc.name", "[]"),
        "p.yaml:3:16: an empty list selects no workload; remove `proc.name` to leave it \
         unconstrained"
    );
    assert_eq!(
        error("- policy: a\n  match:\n  allow: []\n"),
        "p.yaml:2:9: expected a mapping for `match`, found nothing"
    );
}

#[test]
fn proc_name_limit_counts_bytes() {
    let with = |name: &str| format!("- policy: a\n  match:\n    proc.name: {name}\n  allow: []\n");
    parse_ok(&with("exactly-15-byte"));
    // 7 two-byte characters and one more byte: 15 bytes pass; one more character fails, and
    // the suggestion does not split a character.
    parse_ok(&with("ééééééé1"));
    assert!(error(&with("éééééééé")).contains("write `ééééééé`"));
}

#[test]
fn default_policy_errors() {
    assert_eq!(
        error("- default:\n    match:\n      proc.name: x\n    allow: []\n"),
        "p.yaml:2:5: the default policy applies to the workloads no policy matches; it takes no \
         `match`"
    );
    assert_eq!(
        error("- default:\n    allow: []\n- default:\n    allow: []\n"),
        "p.yaml:3:3: a default policy is already defined at p.yaml:1:3"
    );
    assert_eq!(
        error("- default:\n"),
        "p.yaml:1:11: expected a mapping for the default policy, found nothing"
    );
}

#[test]
fn sixty_five_policies_are_too_many_default_included() {
    let policies = |n: usize| -> String {
        (1..=n)
            .map(|i| format!("- policy: p{i}\n  allow: []\n"))
            .collect()
    };
    let default = "- default:\n    allow: []\n";
    let set = parse_ok(&format!("{}{default}", policies(MAX_POLICIES - 1)));
    assert_eq!((set.policies.len(), set.default.is_some()), (63, true));
    assert_eq!(parse_ok(&policies(MAX_POLICIES)).policies.len(), 64);

    let limit = "but the kernel tracks the policies a workload matches in a 64-bit mask, so at \
                 most 64 are allowed, the default policy included";
    assert_eq!(
        errors(&policies(66)),
        [format!(
            "p.yaml:129:3: too many policies: policy `p65` is number 65, {limit}"
        )]
    );
    assert_eq!(
        errors(&format!("{}{default}", policies(MAX_POLICIES))),
        [format!(
            "p.yaml:129:3: too many policies: the default policy is number 65, {limit}"
        )]
    );
    assert_eq!(
        errors(&format!("{default}{}", policies(MAX_POLICIES))),
        [format!(
            "p.yaml:129:3: too many policies: policy `p64` is number 65, {limit}"
        )]
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let text = "\
- policy: a
  mode: blocking
  match:
    proc.name: a-very-long-process-name
    pod: web
  allow:
    - cidr: 10.20.1.0/16
      ports: [0, 80]
    - host: 1.2.3.4
      protocol: sctp
- policy: a
  allow: []
- default:
    allow: nope
";
    assert_eq!(
        errors(text),
        [
            "p.yaml:2:9: unknown mode `blocking`: expected `monitor` or `enforce`",
            "p.yaml:4:16: `a-very-long-process-name` is 24 bytes long, but the kernel keeps \
             only the first 15 bytes of a process name (`comm`); write `a-very-long-pro`, \
             knowing that it also selects any other process whose name starts with it",
            "p.yaml:5:5: unknown key `pod` in `match`; expected `container.id`, \
             `container.name`, `container.image.repository`, `k8s.ns.name`, `k8s.pod.name`, \
             `proc.name` or `cgroup`",
            "p.yaml:7:13: `10.20.1.0/16` has host bits set; did you mean `10.20.0.0/16`?",
            "p.yaml:8:15: port 0 cannot be connected to: ports are 1-65535",
            "p.yaml:9:13: `1.2.3.4` is an IP address, not a host name; write it as `cidr: \
             1.2.3.4`",
            "p.yaml:10:17: unknown protocol `sctp`: expected `tcp`, `udp` or `any`",
            "p.yaml:11:11: policy `a` is already defined at p.yaml:1:3",
            "p.yaml:14:12: expected a list of allowed destinations (`allow: []` for none), \
             found `nope`",
        ]
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn names(set: &PolicySet) -> Vec<&str> {
    set.policies.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn files_load_in_order_and_share_names_and_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "one.yaml", "- policy: a\n  allow: []\n");
    let two = write(
        dir.path(),
        "two.yaml",
        "- policy: b\n  allow: []\n- default:\n    allow: []\n",
    );
    let set = PolicySet::load(&[two.clone(), one.clone()]).unwrap();
    assert_eq!(names(&set), ["b", "a"]);
    assert_eq!(set.policies[1].at.file, one);
    assert_eq!(
        set.default.as_ref().map(|d| d.at.file.clone()),
        Some(two.clone())
    );

    let three = write(
        dir.path(),
        "three.yaml",
        "# again\n- policy: a\n  allow: []\n- default:\n    allow: []\n",
    );
    let errors = strings(&PolicySet::load(&[one.clone(), two.clone(), three.clone()]).unwrap_err());
    let (one, two, three) = (one.display(), two.display(), three.display());
    assert_eq!(
        errors,
        [
            format!("{three}:2:11: policy `a` is already defined at {one}:1:3"),
            format!("{three}:4:3: a default policy is already defined at {two}:3:3"),
        ]
    );
}

#[test]
fn directories_load_their_yaml_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "20-b.yml", "- policy: b\n  allow: []\n");
    write(d, "10-a.yaml", "- policy: a\n  allow: []\n");
    write(d, "30-c.yaml", "- policy: c\n  allow: []\n");
    write(d, "README.md", "not yaml");
    write(d, "40.yaml.bak", "not yaml");
    write(d, ".#30-c.yaml", "not yaml");
    fs::create_dir(d.join("..data")).unwrap();
    write(
        &d.join("..data"),
        "x.yaml",
        "- policy: hidden\n  allow: []\n",
    );
    fs::create_dir(d.join("sub.yaml")).unwrap();
    let extra = write(d, "..data/extra.yaml", "- policy: z\n  allow: []\n");

    let set = PolicySet::load(&[d.to_owned(), extra]).unwrap();
    assert_eq!(names(&set), ["a", "b", "c", "z"]);
    assert_eq!(set.policies[1].at.file, d.join("20-b.yml"));
}

#[test]
fn unreadable_files_are_reported_and_others_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let bad = write(dir.path(), "bad.yaml", "- policy: a\n  allow: [\n");
    let wrong = write(
        dir.path(),
        "wrong.yaml",
        "- policy: b\n  allow: []\n  mode: x\n",
    );
    let binary = dir.path().join("binary.yaml");
    fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let errors = PolicySet::load(&[missing.clone(), bad.clone(), binary.clone(), wrong.clone()])
        .unwrap_err();
    let positions: Vec<_> = errors
        .iter()
        .map(|e| (e.file.clone(), e.line, e.column))
        .collect();
    assert_eq!(
        positions,
        [(missing, 0, 0), (bad, 3, 1), (binary, 0, 0), (wrong, 3, 9)]
    );
    assert!(
        errors[0].message.starts_with("cannot read: "),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].message.contains("while parsing a flow node"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].message.starts_with("cannot read: "),
        "{}",
        errors[2]
    );
    assert_eq!(
        errors[3].message,
        "unknown mode `x`: expected `monitor` or `enforce`"
    );
}

#[test]
fn errors_render_as_file_line_column_message() {
    let e = PolicyError {
        file: PathBuf::from("/etc/vigil/egress.d/web.yaml"),
        line: 3,
        column: 7,
        message: "boom".to_owned(),
    };
    assert_eq!(e.to_string(), "/etc/vigil/egress.d/web.yaml:3:7: boom");
}
