//! The dynamodb-sink stop as a Lambda function.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), busline_lambda::Error> {
    busline_lambda::run(busline_dynamodb_sink::kind()).await
}
