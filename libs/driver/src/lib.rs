//! The local driver: rides a route on the embedded queues while some stops run elsewhere,
//! reached through the Lambda Invoke API (`cargo lambda watch`, an emulator, or AWS). Those
//! functions send their buses and read their objects through the SQS and S3 endpoints this
//! driver serves over the same embedded queues and folder bucket.

mod endpoints;
mod env;
mod invoke;

pub use env::{env_file, function_env, queue_url};
pub use invoke::{InvokedDepot, InvokedStop, Invoker};

use busline_core::ports::{ObjectStore, QueueSender};
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the driver serves its endpoints unless told otherwise.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:4577";

/// Why the driver could not serve.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The address is taken or not this machine's.
    #[error("serving the local driver on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// The driver's endpoints, served until dropped.
pub struct Served {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Served {
    /// `http://<address>`: the `AWS_ENDPOINT_URL` of the functions.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Serves `queues` over SQS's API and `objects` over S3's, on `address` (port 0: any free one).
pub async fn serve(
    address: SocketAddr,
    queues: Arc<dyn QueueSender>,
    objects: Arc<dyn ObjectStore>,
) -> Result<Served, DriverError> {
    let bind = |source| DriverError::Bind { address, source };
    let listener = tokio::net::TcpListener::bind(address).await.map_err(bind)?;
    let address = listener.local_addr().map_err(bind)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = endpoints::router(queues, objects);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(err) = served {
            tracing::error!(%err, "the local driver's endpoints stopped");
        }
    });
    Ok(Served {
        address,
        stop: Some(stop),
        task,
    })
}
