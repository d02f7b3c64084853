//! `bus test`: route tests from fixtures. Each case rides its template on the embedded bus
//! with a fixed trip id (the whole route, or one stop fed passengers) and checks what came out
//! against what must: output records per prefix, forwarded passengers per lane, quarantined
//! passengers and dead letters with their reasons, and counts.

mod actual;
mod bless;
mod case;
mod compare;

pub use case::{CASE_FILE, Case, Expectations, ExpectedRejection, Input};
pub use compare::{FieldDiff, Problem};

use busline_core::{Extensions, Registry};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why `bus test` could not run a case (a failing case is not an error: it is a result).
#[derive(Debug, Error)]
pub enum TestError {
    /// A path holds no case.
    #[error("{0}: no such case, case folder or folder of cases")]
    Missing(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// A case or expectation file is malformed.
    #[error("{path}: {message}")]
    Case {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output object could not be read back.
    #[error("output object {path}: {message}")]
    Output {
        /// The object's file in the ride's bucket.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The case's template is not a route.
    #[error(transparent)]
    Template(#[from] busline_template::TemplateError),
    /// The ride could not run.
    #[error(transparent)]
    Ride(#[from] crate::ride::RideError),
}

impl TestError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        TestError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What to test.
pub struct TestOptions {
    /// Cases, case folders or folders of cases.
    pub paths: Vec<PathBuf>,
    /// The template of cases that name none.
    pub template: PathBuf,
    /// Write what came out as the cases' expected files (folder cases).
    pub bless: bool,
    /// Parameter overrides for every case, after each case's own (an endpoint known only
    /// when the tests run, say).
    pub parameters: Vec<(String, String)>,
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// True when nothing differs.
    pub passed: bool,
    /// Whether `--bless` wrote its expected files.
    pub blessed: bool,
    /// What differs.
    pub problems: Vec<Problem>,
}

/// Every case's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// The cases, in the order found.
    pub cases: Vec<CaseResult>,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
}

impl TestReport {
    /// One line a case, its problems indented below it, and a total.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for case in &self.cases {
            let verdict = match (case.passed, case.blessed) {
                (true, true) => "blessed",
                (true, false) => "ok",
                (false, _) => "FAIL",
            };
            let _ = writeln!(out, "{verdict:<7} {} ({})", case.name, case.path.display());
            for problem in &case.problems {
                let _ = writeln!(out, "        {problem}");
            }
        }
        let _ = writeln!(
            out,
            "\n{} cases: {} passed, {} failed",
            self.cases.len(),
            self.passed,
            self.failed
        );
        out
    }
}

/// Runs every case under `options.paths` with the stop kinds of `registry`.
pub async fn run_tests(
    options: &TestOptions,
    registry: &Registry,
) -> Result<TestReport, TestError> {
    let mut cases = Vec::new();
    for path in &options.paths {
        cases.extend(case::discover(path, &options.template)?);
    }
    for case in &mut cases {
        case.parameters.extend(options.parameters.iter().cloned());
    }
    if cases.is_empty() {
        let paths: Vec<String> = options
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(TestError::Missing(PathBuf::from(paths.join(", "))));
    }
    // Loaded once for every case: it reads the environment and the profile files.
    let extensions = crate::ride::aws_extensions().await;
    let mut results = Vec::with_capacity(cases.len());
    for case in &cases {
        results.push(run_case(case, registry, &extensions, options.bless).await?);
    }
    let passed = results.iter().filter(|r| r.passed).count();
    Ok(TestReport {
        failed: results.len() - passed,
        passed,
        cases: results,
    })
}

async fn run_case(
    case: &Case,
    registry: &Registry,
    extensions: &Extensions,
    bless: bool,
) -> Result<CaseResult, TestError> {
    let result = |problems: Vec<Problem>, blessed| CaseResult {
        name: case.name.clone(),
        path: case.path.clone(),
        passed: problems.is_empty(),
        blessed,
        problems,
    };
    let actual = match actual::ride_case(case, registry, extensions).await {
        Ok(actual) => actual,
        // A case whose template or ride fails is a failed case; the others still run.
        Err(err @ (TestError::Template(_) | TestError::Ride(_) | TestError::Output { .. })) => {
            let reason = format!("{:#}", anyhow::Error::from(err));
            return Ok(result(vec![Problem::Failed { reason }], false));
        }
        Err(err) => return Err(err),
    };
    match (&case.expected_dir, bless) {
        (Some(expected), true) => {
            bless::bless(expected, &actual)?;
            // What was written must now pass: read it back as the next run will.
            let blessed = case::discover(&case.path, &case.template)?;
            let problems = blessed
                .iter()
                .flat_map(|case| compare::compare(case, &actual))
                .collect();
            Ok(result(problems, true))
        }
        (None, true) => Ok(result(
            vec![Problem::Failed {
                reason: "--bless writes expected files of case folders; this case keeps its expectations inline".into(),
            }],
            false,
        )),
        _ => Ok(result(compare::compare(case, &actual), false)),
    }
}
