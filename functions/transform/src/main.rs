//! The transform stop as a Lambda function.

use busline_transform::{Transform, TransformConfig};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    busline_lambda::serve_stop(|vars| {
        Ok(Arc::new(Transform::new(TransformConfig::from_vars(vars)?)))
    })
    .await
}
