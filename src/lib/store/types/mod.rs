//! Rows and parameters that cross the store seam. Rows decode the same way on every backend.
//! One file per table group, as in each backend's folder; everything is re-exported here.

mod definitions;
mod fleet;
mod records;
mod retention;
mod runs;

pub use definitions::*;
pub use fleet::*;
pub use records::*;
pub use retention::*;
pub use runs::*;
