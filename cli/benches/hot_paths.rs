//! Criterion benchmarks of the hot paths, on buses the route builds from generated data:
//! envelope decode and encode, packing riders into buses, and each stop's batch processor
//! from an SQS event to its batch response and forwarded buses (into a sink that counts).
//!
//! `cargo bench -p busline-cli --bench hot_paths`

use busline_cli::bench::prepare::{Input, Prepared};
use busline_cli::bench::sinks::CountingQueues;
use busline_cli::generate::Schema;
use busline_core::envelope::{BusHeader, decode_envelope};
use busline_core::packer::{BusSizing, Packer};
use busline_core::ports::NoMetrics;
use busline_core::{Invocation, Passenger};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

const RECORDS: u64 = 50_000;

fn prepared(runtime: &tokio::runtime::Runtime, work: &Path) -> Prepared {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let route =
        busline_template::read_route(&template, &HashMap::new()).expect("the shipped route");
    runtime
        .block_on(Prepared::new(
            &route,
            &busline_builtin::registry(),
            &Input {
                records: RECORDS,
                files: 2,
                compression: None,
                schema: Schema::Colors,
            },
            work,
        ))
        .expect("the route runs on generated data")
}

fn hot_paths(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let work = tempfile::tempdir().expect("tempdir");
    let prepared = prepared(&runtime, work.path());
    // The first stage that reads records rather than tickets.
    let records = prepared
        .stages
        .iter()
        .find(|s| !s.reads_objects)
        .expect("a stage reading records");
    let bus = records.bodies()[0];
    let envelope = decode_envelope::<Passenger>(bus).expect("a bus");
    let riders: Vec<String> = envelope
        .passengers
        .iter()
        .map(|p| serde_json::to_string(p).expect("JSON"))
        .collect();

    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(bus.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| decode_envelope::<Passenger>(black_box(bus)))
    });
    group.bench_function("encode", |b| {
        b.iter(|| serde_json::to_string(black_box(&envelope)))
    });
    let plain = BusSizing::plain(256 * 1024);
    let compressed = BusSizing {
        budget: 256 * 1024,
        raw_limit: 4 * 1024 * 1024,
        compress: true,
    };
    for (name, sizing) in [("pack", plain), ("pack compressed", compressed)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let header = BusHeader {
                    trip: envelope.trip.clone(),
                    route: envelope.route.clone(),
                    from: records.spec.name.clone(),
                    hop: 2,
                    created: envelope.created.clone(),
                };
                let mut packer = Packer::new(header, &envelope.bus, sizing);
                let mut out = Vec::new();
                for rider in &riders {
                    packer.push(rider, &mut out);
                }
                packer.finish(&mut out);
                out
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("stop");
    for stage in &prepared.stages {
        let event = stage.events[0].clone();
        // A source reader's input is a ticket; count the records it reads instead.
        group.throughput(if stage.reads_objects {
            Throughput::Elements(stage.passengers / stage.events.len() as u64)
        } else {
            Throughput::Bytes(event.iter().map(|d| d.body.len() as u64).sum())
        });
        // One processor per stop: its sinks only count, so rounds do not disturb each other.
        let processor = runtime
            .block_on(prepared.processor(
                &stage.spec,
                Arc::new(CountingQueues::counting()),
                Arc::new(prepared.store()),
                Arc::new(NoMetrics),
            ))
            .expect("processor");
        let processor = &processor;
        group.bench_function(stage.spec.name.as_str(), |b| {
            b.to_async(&runtime).iter_batched(
                || event.clone(),
                |event| async {
                    processor
                        .process(event, &Invocation::default())
                        .await
                        .expect("handled")
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
