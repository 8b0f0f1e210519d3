//! SQLite: API tokens and UI sessions.

use super::*;

const TOKEN_COLUMNS: &str = "id, name, role, dir_prefix, created_by, created_at, revoked_at";

pub(super) async fn session_create(pool: &SqlitePool, p: &NewSession) -> Result<()> {
    sqlx::query(&format!("DELETE FROM api_session WHERE expires_at < {NOW}"))
        .execute(pool)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO api_session (id_hash, token_id, csrf, created_at, expires_at) \
         VALUES (?, ?, ?, {NOW}, strftime('%Y-%m-%d %H:%M:%f','now', ?))"
    ))
    .bind(&p.id_hash)
    .bind(p.token_id)
    .bind(&p.csrf)
    .bind(plus(p.ttl))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn session_delete(pool: &SqlitePool, id_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM api_session WHERE id_hash = ?")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn session_get(pool: &SqlitePool, id_hash: &str) -> Result<Option<SessionRow>> {
    let sql = format!(
        "SELECT {cols}, s.csrf, s.expires_at FROM api_session s JOIN api_token t ON t.id = s.token_id \
         WHERE s.id_hash = ? AND s.expires_at > {NOW} AND t.revoked_at IS NULL",
        cols = prefixed("t", TOKEN_COLUMNS)
    );
    Ok(sqlx::query_as(&sql)
        .bind(id_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn token_create(
    conn: &mut SqliteConnection,
    p: &NewToken,
) -> Result<Option<TokenRow>> {
    let sql = format!(
        "INSERT INTO api_token (name, role, dir_prefix, secret_hash, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?, {NOW}) ON CONFLICT (name) DO NOTHING RETURNING {TOKEN_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(&p.name)
        .bind(p.role)
        .bind(&p.dir_prefix)
        .bind(&p.secret_hash)
        .bind(&p.created_by)
        .fetch_optional(&mut *conn)
        .await?)
}

pub(super) async fn token_get_by_hash(
    pool: &SqlitePool,
    secret_hash: &str,
) -> Result<Option<TokenRow>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_token WHERE secret_hash = ? AND revoked_at IS NULL"
    );
    Ok(sqlx::query_as(&sql)
        .bind(secret_hash)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn token_list(pool: &SqlitePool) -> Result<Vec<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_token ORDER BY name");
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub(super) async fn token_revoke(conn: &mut SqliteConnection, name: &str) -> Result<Cas> {
    let r = sqlx::query(&format!(
        "UPDATE api_token SET revoked_at = {NOW} WHERE name = ? AND revoked_at IS NULL"
    ))
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM api_session WHERE token_id IN (SELECT id FROM api_token WHERE name = ?)",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
