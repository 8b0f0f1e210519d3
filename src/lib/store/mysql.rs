//! Mysql store (being ported from sqlite.rs).

use super::*;

pub(crate) struct MysqlStore;

impl MysqlStore {
    pub(crate) async fn connect(_opts: &ConnectOptions) -> Result<std::sync::Arc<dyn Store>> {
        Err(StoreError::Unsupported(
            "mysql backend not built yet".into(),
        ))
    }
}
