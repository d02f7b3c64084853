//! The wide schema of `bus gen --schema wide`: twenty columns of payments as a data engineer
//! meets them (integers, decimals, timestamps, short and long strings, some nulls), for
//! measuring stops on records wider than the colors schema.

use std::fmt::Write as _;
use std::io::Write;

/// The columns, in order.
pub const COLUMNS: [&str; 20] = [
    "txn_id",
    "account_id",
    "amount",
    "fee",
    "currency",
    "country",
    "created_at",
    "settled_at",
    "status",
    "merchant",
    "category",
    "description",
    "email",
    "ip",
    "latitude",
    "longitude",
    "quantity",
    "discount",
    "tags",
    "notes",
];

const CURRENCIES: [&str; 5] = ["USD", "EUR", "GBP", "JPY", "CHF"];
const COUNTRIES: [&str; 8] = ["US", "DE", "FR", "GB", "JP", "CH", "NL", "SE"];
const STATUSES: [&str; 4] = ["pending", "settled", "refunded", "failed"];
const CATEGORIES: [&str; 6] = [
    "grocery",
    "travel",
    "fuel",
    "dining",
    "electronics",
    "health",
];
const WORDS: [&str; 16] = [
    "monthly",
    "order",
    "refund",
    "card",
    "online",
    "store",
    "express",
    "delivery",
    "premium",
    "service",
    "fee",
    "subscription",
    "annual",
    "gift",
    "voucher",
    "purchase",
];
const TAGS: [&str; 6] = ["promo", "vip", "new", "repeat", "flagged", "mobile"];

/// One value of a record.
enum Cell {
    Null,
    Int(u64),
    Decimal(f64, usize),
    Text(String),
}

/// A deterministic stream of numbers for one record (xorshift64*, seeded from its hash).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.roll(from.len() as u64) as usize]
    }

    /// `fewest` to `fewest + spread - 1` words.
    fn words(&mut self, fewest: u64, spread: u64) -> String {
        let count = fewest + self.roll(spread);
        let mut text = String::new();
        for i in 0..count {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(self.pick(&WORDS));
        }
        text
    }
}

/// The header line of a CSV file.
pub fn csv_header() -> String {
    format!("{}\n", COLUMNS.join(","))
}

/// Writes record `i` (from the 64-bit `hash` of the seed and `i`) as a CSV or NDJSON line; a
/// malformed one lacks its last column.
pub fn write_record(
    out: &mut impl Write,
    hash: u64,
    i: u64,
    ndjson: bool,
    bad: bool,
) -> std::io::Result<()> {
    let cells = cells(hash, i);
    let kept = if bad { cells.len() - 1 } else { cells.len() };
    let mut line = String::with_capacity(512);
    if ndjson {
        line.push('{');
        for (n, (column, cell)) in COLUMNS.iter().zip(&cells).take(kept).enumerate() {
            if n > 0 {
                line.push(',');
            }
            let _ = write!(line, "\"{column}\":");
            json_cell(&mut line, cell);
        }
        line.push_str(if bad { "\n" } else { "}\n" });
    } else {
        for (n, cell) in cells.iter().take(kept).enumerate() {
            if n > 0 {
                line.push(',');
            }
            csv_cell(&mut line, cell);
        }
        line.push('\n');
    }
    out.write_all(line.as_bytes())
}

fn cells(hash: u64, i: u64) -> Vec<Cell> {
    let mut dice = Dice(hash | 1);
    let created = 1_767_225_600 + i * 7;
    let maybe = |dice: &mut Dice, percent: u64, cell: Cell| {
        if dice.roll(100) < percent {
            Cell::Null
        } else {
            cell
        }
    };
    let fee = Cell::Decimal(dice.roll(500) as f64 / 100.0, 2);
    let settled = Cell::Text(timestamp(created + dice.roll(86_400)));
    let description = Cell::Text(dice.words(8, 8));
    let discount = Cell::Decimal(dice.roll(50) as f64 / 100.0, 2);
    let notes = Cell::Text(dice.words(14, 10));
    vec![
        Cell::Int(i),
        Cell::Int(10_000 + dice.roll(90_000)),
        Cell::Decimal(dice.roll(1_000_000) as f64 / 100.0, 2),
        maybe(&mut dice, 10, fee),
        Cell::Text(dice.pick(&CURRENCIES).into()),
        Cell::Text(dice.pick(&COUNTRIES).into()),
        Cell::Text(timestamp(created)),
        maybe(&mut dice, 20, settled),
        Cell::Text(dice.pick(&STATUSES).into()),
        Cell::Text(format!("merchant-{}", dice.roll(5_000))),
        Cell::Text(dice.pick(&CATEGORIES).into()),
        description,
        Cell::Text(format!("user{}@example.com", dice.roll(100_000))),
        Cell::Text(format!(
            "10.{}.{}.{}",
            dice.roll(256),
            dice.roll(256),
            dice.roll(256)
        )),
        Cell::Decimal(dice.roll(180_000_000) as f64 / 1e6 - 90.0, 6),
        Cell::Decimal(dice.roll(360_000_000) as f64 / 1e6 - 180.0, 6),
        Cell::Int(1 + dice.roll(20)),
        maybe(&mut dice, 60, discount),
        Cell::Text(format!("{};{}", dice.pick(&TAGS), dice.pick(&TAGS))),
        maybe(&mut dice, 50, notes),
    ]
}

fn timestamp(seconds: u64) -> String {
    chrono::DateTime::from_timestamp(seconds as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn csv_cell(line: &mut String, cell: &Cell) {
    match cell {
        Cell::Null => {}
        Cell::Int(n) => {
            let _ = write!(line, "{n}");
        }
        Cell::Decimal(x, places) => {
            let _ = write!(line, "{x:.places$}");
        }
        // The long texts have spaces, the tags semicolons: quoted as a CSV writer would.
        Cell::Text(text) if text.contains([' ', ';']) => {
            let _ = write!(line, "\"{text}\"");
        }
        Cell::Text(text) => line.push_str(text),
    }
}

fn json_cell(line: &mut String, cell: &Cell) {
    match cell {
        Cell::Null => line.push_str("null"),
        Cell::Text(text) => {
            let _ = write!(line, "\"{text}\"");
        }
        number => csv_cell(line, number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_has_twenty_columns_some_null_and_is_the_same_every_time() {
        let mut csv = Vec::new();
        let mut nulls = 0;
        for i in 0..200 {
            write_record(&mut csv, 0x5EED + i, i, false, false).expect("write");
        }
        let text = String::from_utf8(csv.clone()).expect("utf-8");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        for record in reader.records() {
            let record = record.expect("a CSV record");
            assert_eq!(record.len(), 20);
            nulls += record.iter().filter(|v| v.is_empty()).count();
        }
        assert!(nulls > 100, "{nulls} nulls in 200 records");
        let mut again = Vec::new();
        for i in 0..200 {
            write_record(&mut again, 0x5EED + i, i, false, false).expect("write");
        }
        assert_eq!(csv, again);

        let mut json = Vec::new();
        write_record(&mut json, 9, 3, true, false).expect("write");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("a JSON line");
        assert_eq!(value.as_object().map(|o| o.len()), Some(20));
        assert_eq!(value["txn_id"], 3);
        assert_eq!(value["created_at"], "2026-01-01T00:00:21Z");
    }
}
