//! MySQL/MariaDB: API tokens and UI sessions.

use super::*;

macro_rules! token_cols {
    () => {
        "t.id, CAST(t.name AS CHAR) AS name, CAST(t.role AS CHAR) AS role, CAST(t.dir_prefix AS CHAR) AS dir_prefix, \
         CAST(t.created_by AS CHAR) AS created_by, t.created_at, t.revoked_at"
    };
}

const SESSION_GET: &str = concat!(
    "SELECT ",
    token_cols!(),
    ", CAST(s.csrf AS CHAR) AS csrf, s.expires_at FROM api_session s JOIN api_token t ON t.id = s.token_id \
     WHERE s.id_hash = ? AND s.expires_at > NOW(6) AND t.revoked_at IS NULL"
);

const TOKEN_GET_BY_HASH: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM api_token t WHERE t.secret_hash = ? AND t.revoked_at IS NULL"
);

const TOKEN_GET_BY_ID: &str = concat!("SELECT ", token_cols!(), " FROM api_token t WHERE t.id = ?");

const TOKEN_LIST: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM api_token t ORDER BY t.name"
);

pub(super) async fn session_create(pool: &MySqlPool, p: &NewSession) -> Result<()> {
    retrying(|| async move {
        sqlx::query("DELETE FROM api_session WHERE expires_at < NOW(6)")
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO api_session (id_hash, token_id, csrf, created_at, expires_at) \
             VALUES (?, ?, ?, NOW(6), DATE_ADD(NOW(6), INTERVAL ? MICROSECOND))",
        )
        .bind(&p.id_hash)
        .bind(p.token_id)
        .bind(&p.csrf)
        .bind(micros(p.ttl))
        .execute(pool)
        .await?;
        Ok(())
    })
    .await
}

pub(super) async fn session_delete(pool: &MySqlPool, id_hash: &str) -> Result<()> {
    retrying(|| async move {
        sqlx::query("DELETE FROM api_session WHERE id_hash = ?")
            .bind(id_hash)
            .execute(pool)
            .await?;
        Ok(())
    })
    .await
}

pub(super) async fn session_get(pool: &MySqlPool, id_hash: &str) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as(SESSION_GET)
        .bind(id_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn token_create(
    conn: &mut MySqlConnection,
    p: &NewToken,
) -> Result<Option<TokenRow>> {
    // a duplicate name fails only this statement; the transaction goes on
    let r = sqlx::query(
        "INSERT INTO api_token (name, role, dir_prefix, secret_hash, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?, NOW(6))",
    )
    .bind(&p.name)
    .bind(p.role)
    .bind(&p.dir_prefix)
    .bind(&p.secret_hash)
    .bind(&p.created_by)
    .execute(&mut *conn)
    .await;
    let id = match r {
        Ok(done) => i64::try_from(done.last_insert_id())
            .expect("AUTO_INCREMENT of a BIGINT column fits in i64"),
        Err(e) if is_duplicate_on(&e, "api_token_name") => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(sqlx::query_as(TOKEN_GET_BY_ID)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

pub(super) async fn token_get_by_hash(
    pool: &MySqlPool,
    secret_hash: &str,
) -> Result<Option<TokenRow>> {
    Ok(sqlx::query_as(TOKEN_GET_BY_HASH)
        .bind(secret_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn token_list(pool: &MySqlPool) -> Result<Vec<TokenRow>> {
    Ok(sqlx::query_as(TOKEN_LIST).fetch_all(pool).await?)
}

pub(super) async fn token_revoke(conn: &mut MySqlConnection, name: &str) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE api_token SET revoked_at = NOW(6) WHERE name = ? AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM api_session WHERE token_id IN (SELECT t.id FROM api_token t WHERE t.name = ?)",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
