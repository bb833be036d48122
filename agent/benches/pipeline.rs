//! Userspace cost per event: decoding ring-buffer records and enriching them with process and
//! fd state, on a realistic mix of records. Reported as events/s (criterion "elements").

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil::{
    enrich::Enricher,
    events::{
        decode::decode,
        synth::{self, RecordBuilder},
        syscalls::Syscall,
    },
    metrics::Metrics,
    pipeline::handle_record,
};

const AT_FDCWD: u64 = -100i64 as u64;
const PROCESSES: u32 = 50;

/// One round of a busy host: per process, file opens (absolute and relative) and closes, a
/// socket connect, failed opens, and one process lifecycle (fork, exec, execve, exit).
fn workload() -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for p in 0..PROCESSES {
        let pid = 10_000 + p;
        for i in 0..8u64 {
            let fd = 3 + i as i64;
            records.push(
                RecordBuilder::new(Syscall::Openat, pid, fd)
                    .comm("nginx")
                    .arg(0, AT_FDCWD)
                    .arg(2, libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64)
                    .string(0, "/usr/share/nginx/html/index.html")
                    .build(),
            );
            records.push(
                RecordBuilder::new(Syscall::Openat, pid, -2)
                    .comm("nginx")
                    .arg(0, AT_FDCWD)
                    .string(0, "conf.d/missing.conf")
                    .build(),
            );
            records.push(
                RecordBuilder::new(Syscall::Close, pid, 0)
                    .comm("nginx")
                    .arg(0, fd as u64)
                    .build(),
            );
        }
        records.push(
            RecordBuilder::new(Syscall::Socket, pid, 20)
                .comm("nginx")
                .arg(0, libc::AF_INET as u64)
                .arg(1, libc::SOCK_STREAM as u64)
                .build(),
        );
        records.push(
            RecordBuilder::new(Syscall::Connect, pid, 0)
                .comm("nginx")
                .arg(0, 20)
                .sockaddr(&synth::inet_sockaddr([10, 0, 0, 7], 5432))
                .build(),
        );
        let child = 20_000 + p;
        records.push(synth::fork(pid, child, "nginx"));
        records.push(synth::exec(child, "sh", "/bin/sh"));
        records.push(
            RecordBuilder::new(Syscall::Execve, child, 0)
                .comm("sh")
                .string(0, "/bin/sh")
                .argv(&["sh", "-c", "logrotate /etc/logrotate.conf"])
                .build(),
        );
        records.push(synth::exit(child, "sh"));
    }
    records
}

fn enricher() -> Enricher {
    vigil::testing::detached_enricher()
}

fn bench(c: &mut Criterion) {
    let records = workload();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(records.len() as u64));

    group.bench_function("decode", |b| {
        b.iter(|| {
            for record in &records {
                let _ = black_box(decode(black_box(record)));
            }
        })
    });

    let metrics = Metrics::new().expect("metrics");
    group.bench_function("decode+enrich", |b| {
        b.iter_batched_ref(
            enricher,
            |enricher| {
                for record in &records {
                    black_box(handle_record(enricher, &metrics, black_box(record)));
                }
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("decode+enrich+json", |b| {
        b.iter_batched_ref(
            enricher,
            |enricher| {
                for record in &records {
                    if let Some(event) = handle_record(enricher, &metrics, record) {
                        black_box(
                            serde_json::to_vec(&vigil::output::json::to_json(&event))
                                .unwrap_or_default(),
                        );
                    }
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
