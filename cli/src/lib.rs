//! The `bus` command's library: ride a route in one process, generate data, benchmark the stops. `main.rs` parses
//! arguments and calls in here; tests call in here too.

pub mod bench;
pub mod generate;
pub mod report;
pub mod ride;
pub mod stops;
