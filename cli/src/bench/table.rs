//! The table `bus bench` prints.

use super::{BenchReport, StopBench};
use std::fmt::Write;

/// One line per stop, then usage and cost per million records with the prices used.
pub(super) fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let mb = report.input_bytes as f64 / 1e6;
    let _ = writeln!(
        out,
        "route {}: {} generated records ({} schema), {mb:.1} MB of CSV; fastest of the timed rounds\n",
        report.route,
        report.records,
        report.schema.name()
    );
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>11} {:>12} {:>9} {:>11} {:>8} {:>13} {:>15}",
        "stop",
        "calls",
        "passengers",
        "passengers/s",
        "MB/s",
        "ceiling MB/s",
        "ratio",
        "SQS calls/10k",
        "SQS billed/10k"
    );
    for stop in &report.stops {
        let ceiling = |value: f64, text: String| if value > 0.0 { text } else { "-".into() };
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>11} {:>12.0} {:>9} {:>11} {:>8} {:>13.2} {:>15.2}",
            stop.stop,
            stop.invocations,
            stop.passengers,
            stop.passengers_per_sec,
            ceiling(stop.mb_per_sec, format!("{:.1}", stop.mb_per_sec)),
            ceiling(
                stop.ceiling_mb_per_sec,
                format!("{:.1}", stop.ceiling_mb_per_sec)
            ),
            ceiling(
                stop.ceiling_ratio,
                format!("{:.0}%", stop.ceiling_ratio * 100.0)
            ),
            stop.sqs_calls_per_10k,
            stop.sqs_billed_per_10k,
        );
    }
    let _ = writeln!(
        out,
        "ceiling: the faster of serde_json and simd-json parsing and serializing the same envelope JSON, per stop: {}",
        per_stop(report, |s| s.ceiling_parser.to_owned())
    );
    let _ = writeln!(
        out,
        "codec: zstd alone (expanding the buses a stop reads, compressing those it sends), passengers/s per stop: {}",
        per_stop(report, |s| s
            .codec_passengers_per_sec
            .map_or("-".into(), |n| format!("{n:.0}")))
    );
    let _ = writeln!(
        out,
        "ratio to the ceiling plus the codec (a JSON stop reading and sending the same compressed buses), per stop: {}",
        per_stop(report, |s| s
            .ceiling_with_codec_ratio
            .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)))
    );
    let usage = &report.usage;
    let cost = &report.cost_per_million;
    let prices = &report.prices;
    let _ = writeln!(
        out,
        "\nusage for {} records: {} SQS billed requests, {} invocations, {:.4} GB-s at {} MB, {} S3 writes, {} S3 reads, {} ledger write units, {} ledger read units",
        report.records,
        usage.sqs_billed,
        usage.invocations,
        usage.gb_seconds,
        report.memory_mb,
        usage.s3_writes,
        usage.s3_reads,
        usage.ledger_write_units,
        usage.ledger_read_units
    );
    let _ = writeln!(
        out,
        "cost per million records: ${:.6} (SQS ${:.6}, Lambda requests ${:.6}, Lambda duration ${:.6}, S3 ${:.6}, trip ledger ${:.6})",
        cost.total, cost.sqs, cost.lambda_requests, cost.lambda_duration, cost.s3, cost.ledger
    );
    let _ = writeln!(
        out,
        "prices: SQS ${:.2}/M requests (64 KiB each), Lambda ${:.2}/M requests + ${:.10}/GB-s, S3 ${:.4}/1k writes, ${:.4}/1k reads, DynamoDB ${:.3}/M write units, ${:.3}/M read units",
        prices.sqs_request * 1e6,
        prices.lambda_request * 1e6,
        prices.lambda_gb_second,
        prices.s3_write_request * 1e3,
        prices.s3_read_request * 1e3,
        prices.dynamodb_write_unit * 1e6,
        prices.dynamodb_read_unit * 1e6,
    );
    let _ = writeln!(
        out,
        "handler time is in process: a deployed stop adds its SQS and S3 round trips to its duration"
    );
    out
}

/// `show` of each stop after the depot, in riding order, joined by commas.
fn per_stop(report: &BenchReport, show: impl Fn(&StopBench) -> String) -> String {
    let shown: Vec<String> = report.stops.iter().skip(1).map(show).collect();
    shown.join(", ")
}
