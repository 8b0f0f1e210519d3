//! The error every command and role reports, with the exit code it maps to.

use crate::definition::Diagnostic;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Definition files with errors; each diagnostic is printed on its own line.
    #[error("{} error(s) in the definitions", .0.iter().filter(|d| d.severity == crate::definition::Severity::Error).count())]
    Invalid(Vec<Diagnostic>),
    /// An operator request that cannot be done as asked (kill a finished instance, unknown id, ...).
    #[error("{0}")]
    Refused(String),
    /// A concurrent writer changed a row this operation relied on; the operation is retried.
    #[error("concurrent change: {0}")]
    Conflict(String),
    /// An operation would lock this instance after one with a higher id (a child's end reporting to
    /// its parent): the engine runs it again with this instance locked first. Never leaves the engine.
    #[error("instance {0} must be locked before the instances this transaction holds")]
    LockOrder(crate::state::InstanceId),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// 1: the request or the definitions are wrong; 2: the environment is (database, config).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Store(e) if e.is_connection() => 2,
            Error::Store(
                StoreError::BadUrl(_)
                | StoreError::Unsupported(_)
                | StoreError::Migrate(_)
                | StoreError::Misconfigured(_),
            ) => 2,
            Error::Config(_) => 2,
            _ => 1,
        }
    }

    /// Whether the whole operation may simply run again (deadlock, lock timeout, lost race).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store(e) => e.is_retryable(),
            Error::Conflict(_) | Error::LockOrder(_) => true,
            _ => false,
        }
    }

    pub fn refused(msg: impl Into<String>) -> Self {
        Error::Refused(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
