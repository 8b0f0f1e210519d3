//! akkaflow: a distributed ETL workflow scheduler whose whole coordination lives in a shared SQL database.
//!
//! Modules, one concern each: `definition` (XML model, parser, validator), `store` (the one seam to
//! SQL), `dag` (pure DAG advance), `state` (run-state vocabulary), `engine` (every run-state operation),
//! `sync`, `scheduler` (master services), `worker` (claim, run, heartbeat), `executor` (node kinds),
//! `token` (API tokens), `http` (REST API, legacy routes and web UI), `cli`.

pub mod alert;
pub mod config;
pub mod definition;
pub mod engine;
pub mod error;
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
