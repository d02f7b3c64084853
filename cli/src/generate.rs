//! `bus gen`: deterministic synthetic input, in the colors schema (Name, HEX, RGB) or the
//! twenty-column wide one ([`crate::wide`]), for load tests.

use busline_core::id::stable_id;
use busline_formats::Compression;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The columns of generated records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schema {
    /// Name, HEX, RGB: about 40 bytes of CSV a record.
    #[default]
    Colors,
    /// Twenty columns of payments (integers, decimals, timestamps, short and long strings,
    /// nulls): about 330 bytes of CSV a record.
    Wide,
}

impl Schema {
    /// About how many bytes of CSV one record takes.
    pub fn bytes_per_record(self) -> u64 {
        match self {
            Schema::Colors => 40,
            Schema::Wide => 330,
        }
    }

    /// Its name, as `--schema` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Schema::Colors => "colors",
            Schema::Wide => "wide",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// The columns.
    pub schema: Schema,
    /// Records in all.
    pub records: u64,
    /// Files to spread them over.
    pub files: u64,
    /// `true` for NDJSON, else CSV.
    pub ndjson: bool,
    /// Folder to write into.
    pub out: PathBuf,
    /// Seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Make every n-th record malformed (0: none).
    pub bad_every: u64,
    /// gzip or zstd the files (`part-00000.csv.gz`), streaming.
    pub compression: Option<Compression>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Bytes of records written (before compression).
    pub bytes: u64,
    /// Bytes of the files (less than `bytes` when compressed).
    pub file_bytes: u64,
    /// Malformed records among them.
    pub bad: u64,
}

/// Writes the files.
pub fn generate(options: &GenOptions) -> std::io::Result<Generated> {
    std::fs::create_dir_all(&options.out)?;
    let files = options.files.max(1);
    let per_file = options.records.div_ceil(files);
    let mut written = Generated {
        files: Vec::new(),
        bytes: 0,
        file_bytes: 0,
        bad: 0,
    };
    let seed = options.seed.to_string();
    for file in 0..files {
        let first = file * per_file;
        let last = ((file + 1) * per_file).min(options.records);
        if first >= last && file > 0 {
            break;
        }
        let mut name = format!(
            "part-{file:05}.{}",
            if options.ndjson { "ndjson" } else { "csv" }
        );
        if let Some(compression) = options.compression {
            name = format!("{name}.{}", compression.extension());
        }
        let path = options.out.join(name);
        let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let records = first..last;
        let bytes = match options.compression {
            Some(compression) => {
                let mut encoder = compression.encoder(file)?;
                let bytes = write_file(&mut encoder, options, records, &seed, &mut written.bad)?;
                encoder.finish()?.flush()?;
                bytes
            }
            None => {
                let mut file = file;
                let bytes = write_file(&mut file, options, records, &seed, &mut written.bad)?;
                file.flush()?;
                bytes
            }
        };
        written.bytes += bytes;
        written.file_bytes += std::fs::metadata(&path)?.len();
        written.files.push(path);
    }
    Ok(written)
}

/// Writes the header (CSV) and `records` into `out`; the bytes written.
fn write_file(
    out: &mut dyn Write,
    options: &GenOptions,
    records: std::ops::Range<u64>,
    seed: &str,
    bad: &mut u64,
) -> std::io::Result<u64> {
    let mut out = Counting::new(out);
    if !options.ndjson {
        match options.schema {
            Schema::Colors => out.write_all(b"Name,HEX,RGB\n")?,
            Schema::Wide => out.write_all(crate::wide::csv_header().as_bytes())?,
        }
    }
    for i in records {
        let malformed = options.bad_every > 0 && (i + 1) % options.bad_every == 0;
        *bad += u64::from(malformed);
        match options.schema {
            Schema::Colors => write_record(&mut out, seed, i, options.ndjson, malformed)?,
            Schema::Wide => {
                let hash = stable_id(&[seed, &i.to_string()]);
                let hash = u64::from_str_radix(&hash, 16).unwrap_or(i);
                crate::wide::write_record(&mut out, hash, i, options.ndjson, malformed)?
            }
        }
    }
    Ok(out.count)
}

fn write_record(
    out: &mut impl Write,
    seed: &str,
    i: u64,
    ndjson: bool,
    bad: bool,
) -> std::io::Result<()> {
    let hash = stable_id(&[seed, &i.to_string()]);
    let (r, g, b) = (
        channel(&hash[0..2]),
        channel(&hash[2..4]),
        channel(&hash[4..6]),
    );
    let name = format!("color-{i:08}");
    let hex = format!("#{:02X}{:02X}{:02X}", r, g, b);
    let rgb = format!("({r}, {g}, {b})");
    match (ndjson, bad) {
        (false, false) => writeln!(out, "{name},{hex},\"{rgb}\""),
        // One field short: the extract stop rejects it with file and line.
        (false, true) => writeln!(out, "{name},{hex}"),
        (true, false) => writeln!(out, r#"{{"Name":"{name}","HEX":"{hex}","RGB":"{rgb}"}}"#),
        (true, true) => writeln!(out, r#"{{"Name":"{name}","HEX":"{hex}""#),
    }
}

fn channel(hex: &str) -> u8 {
    u8::from_str_radix(hex, 16).unwrap_or_default()
}

struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W> Counting<W> {
    fn new(inner: W) -> Self {
        Counting { inner, count: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Human-readable size.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The default folder for generated data.
pub fn default_out() -> &'static Path {
    Path::new("data/generated")
}
