//! The built-in rule `Egress not allowlisted`: one alert per connection or send the kernel
//! reported, with the process, the container, the destination, the policy and the verdict.

use std::{net::IpAddr, sync::Arc};

use serde_json::Value;

use crate::{
    enrich::Enriched,
    events::{EgressDecision, EventKind},
    output::json::rfc3339,
    rules::{alert::Alert, output::OutputFormat, output::clock_time},
};

/// The rule's name.
pub const RULE: &str = "Egress not allowlisted";
/// The rule's priority, Falco's spelling.
pub const PRIORITY: &str = "Warning";

/// The process and workload part of the output; the destination, policy and verdict follow.
const WORKLOAD_OUTPUT: &str = "proc=%proc.name pid=%proc.pid cmdline=%proc.cmdline user=%user.name \
     container=%container.id image=%container.image.repository k8s.ns=%k8s.ns.name \
     k8s.pod=%k8s.pod.name";

/// Renders egress alerts; built once.
pub struct EgressAlerts {
    workload: OutputFormat,
    tags: Arc<[String]>,
    rule: Arc<str>,
    hostname: Arc<str>,
}

impl EgressAlerts {
    /// The renderer; `hostname` goes into every alert.
    pub fn new(hostname: Arc<str>) -> EgressAlerts {
        // The format is a constant of this module, checked by the tests.
        let workload = match OutputFormat::compile(WORKLOAD_OUTPUT) {
            Ok((format, _)) => format,
            Err(error) => unreachable!("the built-in egress output is valid: {error:?}"),
        };
        EgressAlerts {
            workload,
            tags: Arc::from(vec![
                "network".to_string(),
                "egress".to_string(),
                "mitre_command_and_control".to_string(),
                "mitre_exfiltration".to_string(),
            ]),
            rule: Arc::from(RULE),
            hostname,
        }
    }

    /// The alert for an egress event, or `None` for any other event. `policy` names the policy
    /// by kernel index.
    pub fn alert(&self, event: &Enriched, policy: impl Fn(u32) -> Option<String>) -> Option<Alert> {
        let EventKind::Egress(decision) = &event.event.kind else {
            return None;
        };
        let (workload, mut fields) = self.workload.render(event);
        let policy_name = policy(decision.policy).unwrap_or_else(|| decision.policy.to_string());
        let verdict = verdict(decision);
        let protocol = protocol(decision.protocol);
        let destination = match decision.addr {
            IpAddr::V6(addr) => format!("[{addr}]:{}", decision.port),
            IpAddr::V4(addr) => format!("{addr}:{}", decision.port),
        };
        // The name the workload looked up, if a DNS answer it received gave this address.
        let name = crate::rules::dns::global()
            .names_for(&decision.addr)
            .first()
            .map(|name| name.to_string());
        let text = format!(
            "Outbound connection not in the egress allowlist (verdict={verdict} policy={policy_name} \
             dest={destination} name={} proto={protocol} syscall={} {workload})",
            name.as_deref().unwrap_or("<NA>"),
            decision.hook.syscall()
        );
        fields.insert("evt.type".into(), decision.hook.syscall().into());
        fields.insert("fd.sip".into(), decision.addr.to_string().into());
        fields.insert("fd.sport".into(), decision.port.into());
        fields.insert("fd.l4proto".into(), protocol.into());
        fields.insert("fd.sip.name".into(), name.map_or(Value::Null, Value::from));
        fields.insert("egress.policy".into(), policy_name.into());
        fields.insert("egress.verdict".into(), verdict.into());
        Some(Alert {
            hostname: Arc::clone(&self.hostname),
            output: format!("{}: {PRIORITY} {text}", clock_time(event.time_ns)),
            output_fields: fields,
            priority: PRIORITY,
            rule: Arc::clone(&self.rule),
            source: "syscall",
            tags: Arc::clone(&self.tags),
            time: rfc3339(event.time_ns),
        })
    }
}

/// `blocked` (enforce) or `monitored`.
pub fn verdict(decision: &EgressDecision) -> &'static str {
    if decision.blocked {
        "blocked"
    } else {
        "monitored"
    }
}

fn protocol(number: u8) -> &'static str {
    match i32::from(number) {
        libc::IPPROTO_TCP => "tcp",
        libc::IPPROTO_UDP => "udp",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::{EgressHook, Event, Task},
        testing::detached_enricher,
    };

    #[test]
    fn alerts_name_destination_policy_and_verdict() {
        let mut enricher = detached_enricher();
        let event = enricher.enrich(Event {
            task: Task {
                ts_boot_ns: 1,
                pid: 4321,
                tid: 4321,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                comm: "curl".into(),
            },
            flags: 0,
            kind: EventKind::Egress(EgressDecision {
                addr: "2001:db8::7".parse().unwrap(),
                port: 443,
                protocol: libc::IPPROTO_TCP as u8,
                policy: 0,
                blocked: true,
                hook: EgressHook::Connect,
            }),
        });
        let alerts = EgressAlerts::new(Arc::from("node-1"));
        let alert = alerts
            .alert(&event, |index| (index == 0).then(|| "web".to_string()))
            .unwrap();
        assert_eq!(alert.rule.as_ref(), RULE);
        assert!(alert.output.contains("verdict=blocked policy=web dest=[2001:db8::7]:443 name=<NA> proto=tcp syscall=connect proc=curl pid=4321"), "{}", alert.output);
        assert_eq!(alert.output_fields["egress.verdict"], "blocked");
        assert_eq!(alert.output_fields["fd.sport"], 443);
        assert_eq!(alert.output_fields["proc.pid"], 4321);
    }
}
