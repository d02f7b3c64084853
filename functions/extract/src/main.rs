//! The extract stop as a Lambda function.

use busline_extract::{Extract, ExtractConfig};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    busline_lambda::serve_stop(|vars| Ok(Arc::new(Extract::new(ExtractConfig::from_vars(vars)?))))
        .await
}
