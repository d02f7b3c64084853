//! What a run costs on AWS, from counted requests and measured durations.

use serde::Serialize;

/// List prices used (us-east-1, on-demand, no free tier), printed beside the cost.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prices {
    /// SQS standard queue, per billed request (64 KiB chunk).
    pub sqs_request: f64,
    /// Lambda, per invocation.
    pub lambda_request: f64,
    /// Lambda x86_64, per GB-second.
    pub lambda_gb_second: f64,
    /// S3 Standard PUT, COPY, POST, LIST, per request.
    pub s3_write_request: f64,
    /// S3 Standard GET, per request.
    pub s3_read_request: f64,
    /// DynamoDB on demand, per write request unit (the trip ledger).
    pub dynamodb_write_unit: f64,
    /// DynamoDB on demand, per read request unit.
    pub dynamodb_read_unit: f64,
}

/// The prices this build assumes.
pub const PRICES: Prices = Prices {
    sqs_request: 0.40 / 1e6,
    lambda_request: 0.20 / 1e6,
    lambda_gb_second: 0.000_016_666_7,
    s3_write_request: 0.005 / 1e3,
    s3_read_request: 0.0004 / 1e3,
    dynamodb_write_unit: 0.625 / 1e6,
    dynamodb_read_unit: 0.125 / 1e6,
};

/// What the trip ledger writes per recorded bus, in write request units: one transaction of
/// two items (the bus's, under 1 KB, and its trip's totals, about 300 bytes per stop), each
/// billed twice, per started KB, as DynamoDB bills transactional writes.
pub fn ledger_write_units_per_bus(stops: usize) -> u64 {
    let totals_bytes = 200 + 300 * stops as u64;
    2 * (1 + totals_bytes.div_ceil(1024))
}

/// Billable usage of one run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// SQS billed requests (sends, receives, deletes).
    pub sqs_billed: u64,
    /// Lambda invocations.
    pub invocations: u64,
    /// Lambda GB-seconds: each invocation's duration, rounded up to 1 ms, times memory.
    pub gb_seconds: f64,
    /// S3 PUT and LIST requests.
    pub s3_writes: u64,
    /// S3 GET requests.
    pub s3_reads: u64,
    /// Trip ledger write request units (a transaction per bus).
    pub ledger_write_units: u64,
    /// Trip ledger read request units (a consistent read of the totals per batch).
    pub ledger_read_units: u64,
}

/// Dollars by service.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cost {
    /// SQS requests.
    pub sqs: f64,
    /// Lambda requests.
    pub lambda_requests: f64,
    /// Lambda duration.
    pub lambda_duration: f64,
    /// S3 requests.
    pub s3: f64,
    /// The trip ledger (DynamoDB; `TripLedger=off` saves it).
    pub ledger: f64,
    /// The sum.
    pub total: f64,
}

impl Usage {
    /// The cost of this usage at `prices`, scaled by `scale` (e.g. to a million records).
    pub fn cost(&self, prices: &Prices, scale: f64) -> Cost {
        let sqs = self.sqs_billed as f64 * prices.sqs_request * scale;
        let lambda_requests = self.invocations as f64 * prices.lambda_request * scale;
        let lambda_duration = self.gb_seconds * prices.lambda_gb_second * scale;
        let s3 = (self.s3_writes as f64 * prices.s3_write_request
            + self.s3_reads as f64 * prices.s3_read_request)
            * scale;
        let ledger = (self.ledger_write_units as f64 * prices.dynamodb_write_unit
            + self.ledger_read_units as f64 * prices.dynamodb_read_unit)
            * scale;
        Cost {
            sqs,
            lambda_requests,
            lambda_duration,
            s3,
            ledger,
            total: sqs + lambda_requests + lambda_duration + s3 + ledger,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_adds_up_by_service_and_scales() {
        let usage = Usage {
            sqs_billed: 1_000,
            invocations: 100,
            gb_seconds: 2.0,
            s3_writes: 20,
            s3_reads: 10,
            ledger_write_units: 600,
            ledger_read_units: 100,
        };
        let cost = usage.cost(&PRICES, 10.0);
        assert!((cost.sqs - 0.004).abs() < 1e-12, "{cost:?}");
        assert!((cost.lambda_requests - 0.0002).abs() < 1e-12, "{cost:?}");
        assert!(
            (cost.lambda_duration - 0.000_333_334).abs() < 1e-9,
            "{cost:?}"
        );
        assert!((cost.s3 - (0.001 + 0.00004)).abs() < 1e-12, "{cost:?}");
        assert!(
            (cost.ledger - (0.003_75 + 0.000_125)).abs() < 1e-12,
            "{cost:?}"
        );
        let sum = cost.sqs + cost.lambda_requests + cost.lambda_duration + cost.s3 + cost.ledger;
        assert!((cost.total - sum).abs() < 1e-15);
    }

    #[test]
    fn a_bus_of_the_four_stop_route_costs_six_ledger_write_units() {
        // Its totals item holds about 1.4 KB of counters: 2 KB billed, twice, plus its own item.
        assert_eq!(ledger_write_units_per_bus(4), 6);
        assert_eq!(ledger_write_units_per_bus(2), 4);
    }
}
