//! The load stop as a Lambda function.

use busline_load::{Load, LoadConfig};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    busline_lambda::serve_stop(|vars| Ok(Arc::new(Load::new(LoadConfig::from_vars(vars)?)))).await
}
