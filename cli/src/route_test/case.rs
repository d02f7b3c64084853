//! A `bus test` case: a folder (`case.yaml`, `input/`, `expected/`) or one YAML file with the
//! same fields and its input and expectations inline.

use super::TestError;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file that makes a folder a case.
pub const CASE_FILE: &str = "case.yaml";

/// What a case file says (both forms).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// What the case shows, for people.
    #[serde(default)]
    description: Option<String>,
    /// The template, relative to the case; `bus test --template` when unset.
    #[serde(default)]
    template: Option<PathBuf>,
    /// Template parameter overrides.
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    /// The trip id (`test` when unset), so keys and ids are the same every run.
    #[serde(default)]
    trip: Option<String>,
    /// Ride this stop alone, fed `passengers`, instead of the whole route.
    #[serde(default)]
    stop: Option<String>,
    /// Fields that identify a record, to tell a changed record from a missing one.
    #[serde(default)]
    key: Vec<String>,
    /// Compare records in order instead of as sets.
    #[serde(default)]
    ordered: bool,
    /// Case folders: the input folder, relative to the case (`input/` when unset), e.g. a
    /// sample's folder.
    #[serde(default)]
    input: Option<PathBuf>,
    /// Case folders: the expected folder, relative to the case (`expected/` when unset), so
    /// cases that must give the same output share it.
    #[serde(default)]
    expected: Option<PathBuf>,
    /// One-file cases: input objects by key under the input prefix.
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    /// One-file stop cases: the passengers' records.
    #[serde(default)]
    passengers: Vec<Map<String, Value>>,
    /// One-file cases: what must come out.
    #[serde(default)]
    expect: Option<InlineExpect>,
}

/// A one-file case's expectations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InlineExpect {
    #[serde(default)]
    outputs: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    lanes: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    quarantine: Vec<ExpectedRejection>,
    #[serde(default)]
    dead_letters: Vec<ExpectedRejection>,
    #[serde(default)]
    counts: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A rejected passenger or a dead letter that must come out: the stop (any when unset), the
/// reason (exact, or a regular expression between slashes: `/cannot cast .* to number/`), and
/// for a passenger its data when given.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRejection {
    /// The stop that rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
    /// Why.
    pub reason: String,
    /// The passenger's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// What goes in.
#[derive(Debug, Clone)]
pub enum Input {
    /// A folder of input objects.
    Folder(PathBuf),
    /// Input objects by key, inline.
    Objects(BTreeMap<String, String>),
    /// The records of the passengers a stop ridden alone receives.
    Passengers(Vec<Map<String, Value>>),
}

/// What must come out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    /// Records under each key prefix (`output`, `audit`), any format, partitions as fields.
    pub outputs: BTreeMap<String, Vec<Value>>,
    /// A stop ridden alone: the records it forwards on each lane.
    pub lanes: BTreeMap<String, Vec<Value>>,
    /// Rejected passengers.
    pub quarantine: Vec<ExpectedRejection>,
    /// Dead-lettered buses.
    pub dead_letters: Vec<ExpectedRejection>,
    /// Counts per stop, the fields given only (`forwarded`, `rejected`, `dropped_off`, ...).
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A case, loaded.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name: the folder's or the file's.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// What it shows.
    pub description: Option<String>,
    /// The template it rides.
    pub template: PathBuf,
    /// Parameter overrides.
    pub parameters: BTreeMap<String, String>,
    /// The trip id.
    pub trip: String,
    /// The stop ridden alone, if any.
    pub stop: Option<String>,
    /// Fields that identify a record.
    pub key: Vec<String>,
    /// Compare records in order.
    pub ordered: bool,
    /// What goes in.
    pub input: Input,
    /// What must come out.
    pub expect: Expectations,
    /// The folder `--bless` writes expectations into (folder cases only).
    pub expected_dir: Option<PathBuf>,
}

/// Every case under `path`: a case folder, a case file, or a folder of them.
pub fn discover(path: &Path, template: &Path) -> Result<Vec<Case>, TestError> {
    if path.is_file() {
        return Ok(vec![load_file(path, template)?]);
    }
    if path.join(CASE_FILE).is_file() {
        return Ok(vec![load_folder(path, template)?]);
    }
    if !path.is_dir() {
        return Err(TestError::Missing(path.to_owned()));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|err| TestError::io(path, err))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for entry in entries {
        if entry.join(CASE_FILE).is_file() {
            cases.push(load_folder(&entry, template)?);
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            cases.push(load_file(&entry, template)?);
        }
    }
    Ok(cases)
}

fn read_case_file(path: &Path) -> Result<CaseFile, TestError> {
    let text = std::fs::read_to_string(path).map_err(|err| TestError::io(path, err))?;
    serde_yaml_ng::from_str(&text).map_err(|err| TestError::Case {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A case folder: `case.yaml`, `input/` (objects, or `passengers.ndjson` for a stop), and
/// `expected/` (`<prefix>.ndjson`, `lanes/<lane>.ndjson`, `quarantine.ndjson`,
/// `dead-letters.ndjson`, `counts.yaml`); a missing expected file expects nothing.
fn load_folder(dir: &Path, template: &Path) -> Result<Case, TestError> {
    let file_path = dir.join(CASE_FILE);
    let file = read_case_file(&file_path)?;
    let refuse_inline =
        !file.inputs.is_empty() || !file.passengers.is_empty() || file.expect.is_some();
    if refuse_inline {
        return Err(TestError::Case {
            path: file_path,
            message: "a case folder keeps its input in input/ and its expectations in expected/, not inline".into(),
        });
    }
    let input_dir = dir.join(file.input.clone().unwrap_or_else(|| "input".into()));
    let input = match &file.stop {
        Some(_) => Input::Passengers(passengers_file(&input_dir.join("passengers.ndjson"))?),
        None => Input::Folder(input_dir),
    };
    let expected = dir.join(file.expected.clone().unwrap_or_else(|| "expected".into()));
    Ok(Case {
        name: name_of(dir),
        path: dir.to_owned(),
        description: file.description.clone(),
        template: template_of(file.template.clone(), dir, template),
        parameters: file.parameters.clone(),
        trip: file.trip.clone().unwrap_or_else(|| "test".into()),
        stop: file.stop.clone(),
        key: file.key.clone(),
        ordered: file.ordered,
        input,
        expect: read_expected(&expected)?,
        expected_dir: Some(expected),
    })
}

/// A one-file case: the same fields, input and expectations inline.
fn load_file(path: &Path, template: &Path) -> Result<Case, TestError> {
    let file = read_case_file(path)?;
    if file.input.is_some() || file.expected.is_some() {
        return Err(TestError::Case {
            path: path.to_owned(),
            message: "a one-file case has its input in `inputs` (or `passengers`) and its expectations in `expect`; `input` and `expected` name a case folder's".into(),
        });
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let input = match &file.stop {
        Some(_) => Input::Passengers(file.passengers.clone()),
        None => Input::Objects(file.inputs.clone()),
    };
    let expect = file.expect.unwrap_or_default();
    let inline = |records: BTreeMap<String, Vec<Value>>| -> Result<_, TestError> {
        records
            .into_iter()
            .map(|(name, values)| {
                Ok((
                    name,
                    values
                        .into_iter()
                        .map(|v| json_text(v, path))
                        .collect::<Result<_, _>>()?,
                ))
            })
            .collect()
    };
    Ok(Case {
        name: name_of(path),
        path: path.to_owned(),
        description: file.description,
        template: template_of(file.template, base, template),
        parameters: file.parameters,
        trip: file.trip.unwrap_or_else(|| "test".into()),
        stop: file.stop,
        key: file.key,
        ordered: file.ordered,
        input,
        expect: Expectations {
            outputs: inline(expect.outputs)?,
            lanes: inline(expect.lanes)?,
            quarantine: expect.quarantine,
            dead_letters: expect.dead_letters,
            counts: expect.counts,
        },
        expected_dir: None,
    })
}

/// The case's template: its own, relative to `base`, or the default.
fn template_of(own: Option<PathBuf>, base: &Path, default: &Path) -> PathBuf {
    own.map_or_else(|| default.to_owned(), |t| base.join(t))
}

/// An inline record: an object, or JSON text of one (YAML reads `12.50` as the float 12.5; the
/// JSON text `'{"value": 12.50}'` keeps its digits).
fn json_text(value: Value, path: &Path) -> Result<Value, TestError> {
    match value {
        Value::String(text) => serde_json::from_str(&text).map_err(|err| TestError::Case {
            path: path.to_owned(),
            message: format!("an expected record given as text is not JSON: {err}: {text}"),
        }),
        other => Ok(other),
    }
}

/// The expectations kept in a case's `expected/` folder.
fn read_expected(dir: &Path) -> Result<Expectations, TestError> {
    let mut expect = Expectations::default();
    if !dir.is_dir() {
        return Ok(expect);
    }
    for (prefix, path) in ndjson_files(dir)? {
        match prefix.as_str() {
            "quarantine" => expect.quarantine = rejections_file(&path)?,
            "dead-letters" => expect.dead_letters = rejections_file(&path)?,
            _ => {
                expect.outputs.insert(prefix, records_file(&path)?);
            }
        }
    }
    let lanes = dir.join("lanes");
    if lanes.is_dir() {
        for (lane, path) in ndjson_files(&lanes)? {
            expect.lanes.insert(lane, records_file(&path)?);
        }
    }
    let counts = dir.join("counts.yaml");
    if counts.is_file() {
        let text = std::fs::read_to_string(&counts).map_err(|err| TestError::io(&counts, err))?;
        expect.counts = serde_yaml_ng::from_str(&text).map_err(|err| TestError::Case {
            path: counts.clone(),
            message: err.to_string(),
        })?;
    }
    Ok(expect)
}

/// The `<name>.ndjson` files of `dir`, by name.
fn ndjson_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, TestError> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|err| TestError::io(dir, err))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "ndjson"))
        .map(|path| (name_of(&path), path))
        .collect();
    files.sort();
    Ok(files)
}

/// The JSON values of an NDJSON file, one a line; the error names the file and line.
pub fn records_file(path: &Path) -> Result<Vec<Value>, TestError> {
    let text = std::fs::read_to_string(path).map_err(|err| TestError::io(path, err))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|err| TestError::Case {
                path: path.to_owned(),
                message: format!("line {}: {err}", index + 1),
            })
        })
        .collect()
}

/// A stop case's passengers: JSON objects, one a line.
fn passengers_file(path: &Path) -> Result<Vec<Map<String, Value>>, TestError> {
    records_file(path)?
        .into_iter()
        .map(|value| match value {
            Value::Object(record) => Ok(record),
            other => Err(TestError::Case {
                path: path.to_owned(),
                message: format!("a passenger is a JSON object, found {other}"),
            }),
        })
        .collect()
}

fn rejections_file(path: &Path) -> Result<Vec<ExpectedRejection>, TestError> {
    records_file(path)?
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value(value).map_err(|err| TestError::Case {
                path: path.to_owned(),
                message: format!(
                    "entry {}: {err} (expected {{\"stop\": ..., \"reason\": ...}})",
                    index + 1
                ),
            })
        })
        .collect()
}
