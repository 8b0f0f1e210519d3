//! Postgres store (being ported from sqlite.rs).

use super::*;

pub(crate) struct PostgresStore;

impl PostgresStore {
    pub(crate) async fn connect(_opts: &ConnectOptions) -> Result<std::sync::Arc<dyn Store>> {
        Err(StoreError::Unsupported(
            "postgres backend not built yet".into(),
        ))
    }
}
