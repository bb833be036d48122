//! Checks every few seconds that the agent's programs are still attached, and reports to the
//! sinks any that someone detached (`Vigil probes detached`), once per program until it is
//! attached again.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde_json::{Map, Value};
use vigil::{
    probes::integrity::{self, LinkIntegrity},
    rules::loader::Priority,
    sinks::dispatcher::{AgentNotice, Dispatcher},
};

/// Rule name of the record about detached programs.
pub const DETACHED: &str = "Vigil probes detached";
/// How often the links are counted.
const EVERY: Duration = Duration::from_secs(2);

/// Starts watching the links of `programs` (name, kernel program id).
pub fn start(
    programs: Vec<(String, u32)>,
    dispatcher: Arc<Dispatcher>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(integrity) = tokio::task::spawn_blocking(move || {
            LinkIntegrity::capture(&programs, &integrity::own_links())
        })
        .await
        else {
            return;
        };
        if integrity.is_empty() {
            tracing::warn!("cannot see the agent's own links: detached programs go unnoticed");
            return;
        }
        tracing::debug!(programs = integrity.len(), "watching the programs' links");
        let mut reported = BTreeSet::new();
        loop {
            tokio::time::sleep(EVERY).await;
            let check = integrity.clone();
            let Ok(detached) =
                tokio::task::spawn_blocking(move || check.check(&integrity::own_links())).await
            else {
                continue;
            };
            let now: BTreeSet<String> = detached.iter().map(|d| d.program.clone()).collect();
            let new: Vec<_> = detached
                .iter()
                .filter(|d| !reported.contains(&d.program))
                .collect();
            if !new.is_empty() {
                let names: Vec<&str> = new.iter().map(|d| d.program.as_str()).collect();
                tracing::error!(programs = ?names, "the agent's programs were detached");
                let mut fields = Map::new();
                fields.insert(
                    "vigil.programs".into(),
                    Value::Array(names.iter().map(|&n| Value::from(n)).collect()),
                );
                dispatcher.submit_health(AgentNotice {
                    rule: DETACHED,
                    priority: Priority::Critical,
                    tag: "health",
                    text: format!(
                        "Vigil's programs were detached by someone else; what they watched or \
                         enforced is no longer covered (programs={})",
                        names.join(",")
                    ),
                    fields,
                });
            }
            reported = now;
        }
    })
}
