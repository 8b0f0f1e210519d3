//! akkaflow: a distributed ETL workflow scheduler whose whole coordination lives in a shared SQL database.
//!
//! Modules, one concern each: `definition` (XML model, parser, validator), `store` (the one seam to SQL),
//! `scheduler`, `worker`, `executor`, `cli`.

pub mod dag;
pub mod definition;
pub mod state;
pub mod store;
#[doc(hidden)]
pub mod testkit;
