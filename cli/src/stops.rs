//! Which stop implementation runs for each kind of function in the template.

use busline_core::config::Vars;
use busline_core::{ConfigError, Stop};
use busline_extract::{Extract, ExtractConfig};
use busline_load::{Load, LoadConfig};
use busline_transform::{Transform, TransformConfig};
use std::sync::Arc;

/// The stop kinds this build knows (the template's `BuildProperties.Binary`).
pub const KINDS: [&str; 4] = ["depot", "extract", "transform", "load"];

/// Builds the queue-reading stop of `kind` from its variables.
/// `Ok(None)` for a kind this build does not know.
pub fn consumer_stop(kind: &str, vars: &dyn Vars) -> Result<Option<Arc<dyn Stop>>, ConfigError> {
    Ok(Some(match kind {
        "extract" => Arc::new(Extract::new(ExtractConfig::from_vars(vars)?)),
        "transform" => Arc::new(Transform::new(TransformConfig::from_vars(vars)?)),
        "load" => Arc::new(Load::new(LoadConfig::from_vars(vars)?)),
        _ => return Ok(None),
    }))
}
