//! busline embedded backends: in-memory queues that keep SQS semantics, a folder that stands
//! in for S3, a metrics board, and the embedded bus that runs a whole route in one process.

pub mod bus;
pub mod clock;
pub mod folder_store;
pub mod metrics_board;
pub mod queue;
pub mod queues;

pub use bus::{BusStop, EmbeddedBus, RideError};
pub use clock::{Clock, ManualClock};
pub use folder_store::FolderStore;
pub use metrics_board::{MetricsBoard, StopTally};
pub use queue::{MemoryQueue, QueueSettings, QueueStats, ReceivedMessage};
pub use queues::EmbeddedQueues;
