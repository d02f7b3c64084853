//! The `bus` command as a library: [`main`] runs it with the stop kinds of a [`Registry`], so a
//! user's repository builds its own `bus` with its own kinds beside the built-in ones. Tests
//! call the modules directly.
//!
//! [`Registry`]: busline_core::Registry

mod app;
pub mod bench;
pub mod generate;
pub mod operate;
pub mod report;
pub mod ride;
pub mod route_test;
mod table;
pub mod trip_view;
pub mod trips;
pub mod wide;

pub use app::main;
