//! akkaflow: a distributed ETL workflow scheduler whose whole coordination lives in a shared SQL database.
//!
//! Modules, one concern each: `definition` (XML model, parser, validator), `store` (the one seam to
//! SQL), `engine` (every run-state operation; its `state` and `dag` are the pure core and `advance`
//! the one loop that moves a run forward), `sync`, `scheduler` (elector and master services),
//! `worker` (claim, run, heartbeat, report), `executor` (node kinds, behind a narrow port),
//! `token` (API tokens), `http` (REST API, legacy routes and web UI), `supervisor` (starts the
//! roles, owns the signals), `cli` (parses and calls), `bench`.

pub mod alert;
pub mod config;
pub mod definition;
pub mod engine;
pub mod error;
pub mod rollback;
pub mod store;
pub mod sync;
pub mod token;
pub mod worker;

pub mod bench;
pub mod cli;
pub mod executor;
pub mod http;
pub mod scheduler;
pub mod supervisor;
#[doc(hidden)]
pub mod testkit;

/// The run-state vocabulary lives in [`engine::state`]; this path stays because the store, the
/// worker and the HTTP API name it in some fifty files.
pub use engine::state;
pub use error::{Error, Result};
