//! Rule evaluation cost: events/s through the official Falco stable ruleset on a realistic
//! mix, and proof that rules which cannot match an event type cost that event nothing.

use std::{hint::black_box, path::PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil::{
    enrich::Enriched,
    events::{
        decode::decode,
        synth::{self, RecordBuilder},
        syscalls::Syscall,
    },
    rules::{
        engine::{Ruleset, Selection},
        loader::{self, Source},
    },
};

const AT_FDCWD: u64 = -100i64 as u64;

fn falco_rules() -> PathBuf {
    vigil::testing::falco_rules_dir().join("falco_rules.yaml")
}

/// Enriched events of a busy host: mostly file opens and closes, some network, a few execs.
fn events() -> Vec<Enriched> {
    let mut enricher = vigil::testing::detached_enricher();
    let mut records = Vec::new();
    for p in 0..20u32 {
        let pid = 1000 + p;
        records.push(synth::fork(1, pid, "bash"));
        records.push(synth::exec(pid, "nginx", "/usr/sbin/nginx"));
        records.push(
            RecordBuilder::new(Syscall::Execve, pid, 0)
                .comm("nginx")
                .string(0, "/usr/sbin/nginx")
                .argv(&["nginx", "-g", "daemon off;"])
                .build(),
        );
        for i in 0..20u64 {
            let path = [
                "/var/www/index.html",
                "/etc/nginx/nginx.conf",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/proc/self/status",
            ][i as usize % 4];
            records.push(
                RecordBuilder::new(Syscall::Openat, pid, 5)
                    .comm("nginx")
                    .arg(0, AT_FDCWD)
                    .arg(2, libc::O_RDONLY as u64)
                    .string(0, path)
                    .build(),
            );
            records.push(
                RecordBuilder::new(Syscall::Close, pid, 0)
                    .comm("nginx")
                    .arg(0, 5)
                    .build(),
            );
        }
        records.push(
            RecordBuilder::new(Syscall::Socket, pid, 7)
                .comm("nginx")
                .arg(0, libc::AF_INET as u64)
                .arg(1, libc::SOCK_STREAM as u64)
                .build(),
        );
        records.push(
            RecordBuilder::new(Syscall::Connect, pid, 0)
                .comm("nginx")
                .arg(0, 7)
                .sockaddr(&synth::inet_sockaddr([10, 1, 2, 3], 5432))
                .build(),
        );
        records.push(
            RecordBuilder::new(Syscall::Dup2, pid, 1)
                .comm("nginx")
                .arg(0, 7)
                .arg(1, 1)
                .build(),
        );
    }
    records
        .iter()
        .filter_map(|r| decode(r).ok())
        .map(|event| enricher.enrich(event))
        .collect()
}

/// A ruleset of `count` rules that can only match ptrace events.
fn ptrace_rules(count: usize) -> Ruleset {
    let mut text = String::new();
    for i in 0..count {
        text.push_str(&format!(
            "- rule: ptrace {i}\n  desc: d\n  condition: evt.type = ptrace and proc.name = tool{i}\n  output: o\n  priority: warning\n"
        ));
    }
    text.push_str("- rule: opens\n  desc: d\n  condition: evt.type = openat and fd.name = /etc/shadow\n  output: o\n  priority: warning\n");
    let loaded = loader::load(&[Source {
        name: "bench.yaml".into(),
        text,
    }]);
    Ruleset::compile(&loaded, &Selection::default()).0
}

fn bench(c: &mut Criterion) {
    let events = events();
    let (stable, report) = Ruleset::load(&[falco_rules()], &Selection::default());
    assert!(report.rules >= 23);

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    let mut alerts = Vec::new();
    group.bench_function("falco_stable_ruleset", |b| {
        b.iter(|| {
            for event in &events {
                alerts.clear();
                stable.evaluate(black_box(event), &mut alerts);
            }
        })
    });
    for count in [1usize, 1000] {
        let ruleset = ptrace_rules(count);
        group.bench_function(format!("non_matching_rules/{count}"), |b| {
            b.iter(|| {
                for event in &events {
                    alerts.clear();
                    ruleset.evaluate(black_box(event), &mut alerts);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
