//! PostgreSQL: API tokens and UI sessions.

use super::*;

macro_rules! token_cols {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "name, ",
            $p,
            "role, ",
            $p,
            "dir_prefix, ",
            $p,
            "created_by, ",
            $p,
            "created_at, ",
            $p,
            "revoked_at"
        )
    };
}

const SESSION_GET: &str = concat!(
    "SELECT ",
    token_cols!("t."),
    ", s.csrf, s.expires_at FROM api_session s JOIN api_token t ON t.id = s.token_id \
     WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL"
);

const TOKEN_GET_BY_HASH: &str = concat!(
    "SELECT ",
    token_cols!(""),
    " FROM api_token WHERE secret_hash = $1 AND revoked_at IS NULL"
);

const TOKEN_LIST: &str = concat!(
    "SELECT ",
    token_cols!(""),
    " FROM api_token ORDER BY name COLLATE \"C\""
);

pub(super) async fn session_create(pool: &PgPool, p: &NewSession) -> Result<()> {
    sqlx::query("DELETE FROM api_session WHERE expires_at < now()")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO api_session (id_hash, token_id, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, now(), now() + $4 * interval '1 microsecond')",
    )
    .bind(&p.id_hash)
    .bind(p.token_id)
    .bind(&p.csrf)
    .bind(micros(p.ttl))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn session_delete(pool: &PgPool, id_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM api_session WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn session_get(pool: &PgPool, id_hash: &str) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as(SESSION_GET)
        .bind(id_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn token_create(
    conn: &mut PgConnection,
    p: &NewToken,
) -> Result<Option<TokenRow>> {
    // ON CONFLICT, not a caught unique violation: an error would abort the whole transaction
    Ok(sqlx::query_as(concat!(
        "INSERT INTO api_token (name, role, dir_prefix, secret_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (name) DO NOTHING RETURNING ",
        token_cols!("")
    ))
    .bind(&p.name)
    .bind(p.role)
    .bind(&p.dir_prefix)
    .bind(&p.secret_hash)
    .bind(&p.created_by)
    .fetch_optional(&mut *conn)
    .await?)
}

pub(super) async fn token_get_by_hash(
    pool: &PgPool,
    secret_hash: &str,
) -> Result<Option<TokenRow>> {
    Ok(sqlx::query_as(TOKEN_GET_BY_HASH)
        .bind(secret_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn token_list(pool: &PgPool) -> Result<Vec<TokenRow>> {
    Ok(sqlx::query_as(TOKEN_LIST).fetch_all(pool).await?)
}

pub(super) async fn token_revoke(conn: &mut PgConnection, name: &str) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE api_token SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM api_session WHERE token_id IN (SELECT id FROM api_token WHERE name = $1)",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
