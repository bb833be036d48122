//! Alert delivery costs: rendering a record in each format, and pushing records through a
//! sink's on-disk spool (append, read back, acknowledge). Reported as records/s.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil::sinks::{
    format::Format,
    queue::SinkQueue,
    record::sample_record,
    spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig},
};

const RECORDS: u64 = 1_000;

fn formats(c: &mut Criterion) {
    let record = sample_record(42);
    let mut group = c.benchmark_group("format");
    group.throughput(Throughput::Elements(1));
    for format in [Format::Falco, Format::Ecs, Format::Ocsf, Format::Cef] {
        group.bench_function(format.name(), |b| {
            b.iter(|| black_box(format.render(black_box(&record))))
        });
    }
    group.finish();
}

/// Queue, read and acknowledge `RECORDS` alerts, as the dispatcher and a worker do.
fn through(queue: &SinkQueue, payload: &[u8]) {
    for n in 0..RECORDS {
        let _ = queue.push(payload, n as i64);
    }
    loop {
        let batch = queue.read(500, 1 << 20).unwrap_or_default();
        let Some(last) = batch.last() else { break };
        let _ = queue.ack(last.id);
    }
}

fn queues(c: &mut Criterion) {
    let payload = serde_json::to_vec(&sample_record(1)).unwrap_or_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(20);
    group.bench_function("memory", |b| {
        b.iter_batched(
            || SinkQueue::memory(100_000, FullPolicy::DropNewest),
            |queue| through(&queue, &payload),
            BatchSize::SmallInput,
        )
    });
    for (name, fsync) in [
        (
            "spool_fsync_interval",
            FsyncPolicy::Interval(std::time::Duration::from_secs(1)),
        ),
        ("spool_fsync_never", FsyncPolicy::Never),
    ] {
        let mut round = 0u32;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    round += 1;
                    let config = SpoolConfig {
                        dir: dir.path().join(format!("{name}-{round}")),
                        max_bytes: 1 << 30,
                        segment_bytes: 16 << 20,
                        fsync,
                        when_full: FullPolicy::DropNewest,
                    };
                    let (spool, _) = Spool::open(config).unwrap_or_else(|e| panic!("spool: {e}"));
                    SinkQueue::disk(spool)
                },
                |queue| through(&queue, &payload),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, formats, queues);
criterion_main!(benches);
