//! Pools: their occupancy now, and their slots set at once for the whole fleet (the same operation
//! as `akkaflow pool set`).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::engine::pool::PoolChange;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;
use crate::store::{PoolRow, TokenRole};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PoolList {
    /// By name
    pub pools: Vec<PoolRow>,
}

/// Every pool with its slots, the slots in use and its running and waiting tasks
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools",
    responses((status = 200, body = PoolList), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<PoolList>> {
    Ok(Json(PoolList {
        pools: state.engine.store.pool_list().await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolSlots {
    /// How many slots the pool's running tasks may take (0 pauses it; running tasks finish)
    pub slots: i64,
}

/// Set a pool's slots now, fleet-wide (operator, unscoped: a pool is shared by every dir); recorded
/// as an event. The next sync that changes the pool's slots in pools.xml sets them again
#[utoipa::path(post, path = "/api/v1/pools/{name}/slots", tag = "pools",
    params(("name" = String, Path)), request_body = PoolSlots,
    responses((status = 200, body = PoolChange), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_slots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PoolSlots>,
) -> ApiResult<Json<PoolChange>> {
    caller.require(TokenRole::Operator)?;
    if caller.dir.is_some() {
        return Err(ApiError::forbidden(
            "a pool is shared by every dir: only an unscoped token may set its slots",
        ));
    }
    if body.slots < 0 {
        return Err(ApiError::bad_request(format!(
            "slots must be 0 or more, not {}",
            body.slots
        )));
    }
    let pools = state.engine.store.pool_list().await?;
    if !pools.iter().any(|p| p.name == name) {
        return Err(ApiError::not_found(format!("no pool `{name}`")));
    }
    Ok(Json(
        state
            .engine
            .pool_set(&name, body.slots, &caller.actor())
            .await?,
    ))
}
