//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations and the
//! response types, served at `/api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api::{admin, alerts, backfills, logs, pools, runs, versions, workflows};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "akkaflow",
        description = "REST API of akkaflow, a distributed ETL workflow scheduler. Authenticate with \
            `Authorization: Bearer <token>` (create one with `akkaflow token create`). Errors are \
            `{\"error\": {\"code\", \"message\"}}`. A token scoped to a dir prefix sees nothing outside it: \
            such resources answer 404."
    ),
    paths(
        admin::whoami,
        workflows::list, workflows::get, workflows::enable, workflows::disable,
        workflows::trigger, workflows::run, workflows::validate, workflows::upload,
        versions::list, versions::diff, versions::rollback,
        runs::list, runs::get, runs::kill, runs::rerun,
        runs::task_get, runs::task_retry, runs::task_kill,
        logs::instance_logs, logs::instance_download, logs::task_logs, logs::instance_follow, logs::task_follow,
        admin::workers, admin::schedulers, admin::cluster, admin::events,
        admin::db_links, admin::file_links,
        admin::tokens, admin::token_create, admin::token_revoke,
        alerts::list, alerts::resend,
        pools::list, pools::set_slots,
        backfills::create, backfills::list, backfills::get, backfills::cancel,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "workflows"), (name = "definitions"), (name = "instances"), (name = "tasks"),
        (name = "logs"), (name = "cluster"), (name = "links"), (name = "tokens"), (name = "alerts"),
        (name = "pools"), (name = "backfills"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /api/openapi.json` (public: it documents the API, it reveals no data).
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
