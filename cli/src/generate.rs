//! `bus gen`: deterministic synthetic input in the colors schema (Name, HEX, RGB), for load tests.

use busline_core::id::stable_id;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
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
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
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
        bad: 0,
    };
    let seed = options.seed.to_string();
    for file in 0..files {
        let first = file * per_file;
        let last = ((file + 1) * per_file).min(options.records);
        if first >= last && file > 0 {
            break;
        }
        let extension = if options.ndjson { "ndjson" } else { "csv" };
        let path = options.out.join(format!("part-{file:05}.{extension}"));
        let mut out = Counting::new(BufWriter::with_capacity(1 << 20, File::create(&path)?));
        if !options.ndjson {
            out.write_all(b"Name,HEX,RGB\n")?;
        }
        for i in first..last {
            let bad = options.bad_every > 0 && (i + 1) % options.bad_every == 0;
            written.bad += u64::from(bad);
            write_record(&mut out, &seed, i, options.ndjson, bad)?;
        }
        out.flush()?;
        written.bytes += out.count;
        written.files.push(path);
    }
    Ok(written)
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
