//! The depot as a Lambda function: an EventBridge schedule, an HTTP API call or a direct
//! invoke starts a trip.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), busline_lambda::Error> {
    busline_lambda::run(busline_depot::kind()).await
}
