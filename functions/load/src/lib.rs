//! The load stop: drops passengers off at the destination. Each bus becomes one object under
//! `OUTPUT_PREFIX`, keyed by trip and bus id, so a redelivered bus overwrites its object and
//! never duplicates it.

use async_trait::async_trait;
use busline_core::config::{Vars, optional, required};
use busline_core::envelope::Passenger;
use busline_core::{ConfigError, InitError, Outbox, Stop, StopContext, StopError, StopKind};
use serde_json::Value;

/// The kind's name: the template's `BuildProperties.Binary`.
pub const KIND: &str = "load";

/// The load kind, as the registry builds it.
pub fn kind() -> StopKind {
    StopKind::stop(KIND, |init| {
        let config = LoadConfig::from_vars(init.settings());
        async move { Ok::<_, InitError>(Load::new(config?)) }
    })
}

/// The output formats load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row: the fields of the bus in first-seen order.
    Csv,
}

impl OutputFormat {
    fn extension(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Csv => "csv",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Ndjson => "application/x-ndjson",
            OutputFormat::Csv => "text/csv",
        }
    }
}

/// The load stop's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// `OUTPUT_PREFIX`: where objects are written, e.g. `output/`.
    pub output_prefix: String,
    /// `OUTPUT_FORMAT`: `ndjson` (default) or `csv`.
    pub format: OutputFormat,
}

impl LoadConfig {
    /// Reads `OUTPUT_PREFIX` and `OUTPUT_FORMAT`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self, ConfigError> {
        let format = match optional(vars, "OUTPUT_FORMAT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("ndjson") | Some("jsonl") => OutputFormat::Ndjson,
            Some("csv") => OutputFormat::Csv,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "OUTPUT_FORMAT".into(),
                    value: other.into(),
                    reason: "expected ndjson or csv".into(),
                });
            }
        };
        Ok(LoadConfig {
            output_prefix: required(vars, "OUTPUT_PREFIX")?,
            format,
        })
    }
}

/// The load stop.
pub struct Load {
    config: LoadConfig,
}

impl Load {
    /// A load stop with its settings.
    pub fn new(config: LoadConfig) -> Self {
        Load { config }
    }

    /// The object key for one bus of one trip.
    pub fn object_key(&self, trip: &str, bus: &str) -> String {
        format!(
            "{}trip={trip}/{bus}.{}",
            self.config.output_prefix,
            self.config.format.extension()
        )
    }
}

#[async_trait]
impl Stop for Load {
    async fn handle(
        &self,
        ctx: &StopContext<'_>,
        passengers: Vec<Passenger>,
        outbox: &mut Outbox,
    ) -> Result<(), StopError> {
        if passengers.is_empty() {
            return Ok(());
        }
        let body = match self.config.format {
            OutputFormat::Ndjson => ndjson(&passengers)?,
            OutputFormat::Csv => csv(&passengers)?,
        };
        let key = self.object_key(ctx.trip, ctx.bus);
        ctx.objects
            .put(&key, body, self.config.format.content_type())
            .await?;
        outbox.drop_off(passengers.len() as u64);
        Ok(())
    }
}

fn ndjson(passengers: &[Passenger]) -> Result<Vec<u8>, StopError> {
    let mut body = Vec::with_capacity(passengers.len() * 64);
    for passenger in passengers {
        serde_json::to_writer(&mut body, passenger.data())
            .map_err(|err| StopError::permanent(format!("passenger {}: {err}", passenger.id())))?;
        body.push(b'\n');
    }
    Ok(body)
}

fn csv(passengers: &[Passenger]) -> Result<Vec<u8>, StopError> {
    let mut header: Vec<&str> = Vec::new();
    for passenger in passengers {
        for key in passenger.data().keys() {
            if !header.contains(&key.as_str()) {
                header.push(key);
            }
        }
    }
    let failed = |err: csv::Error| StopError::permanent(format!("writing CSV: {err}"));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).map_err(failed)?;
    for passenger in passengers {
        let row = header.iter().map(|name| match passenger.get(name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        });
        writer.write_record(row).map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|err| StopError::permanent(format!("writing CSV: {err}")))
}
