//! MySQL/MariaDB: business calendars (`calendars.xml`), each a row of JSON.

use super::*;

const CALENDAR_LIST: &str =
    "SELECT CAST(name AS CHAR) AS name, CAST(definition AS CHAR) AS definition \
     FROM calendar ORDER BY name";

pub(super) async fn calendar_list(pool: &MySqlPool) -> Result<Vec<CalendarRow>> {
    Ok(sqlx::query_as(CALENDAR_LIST).fetch_all(pool).await?)
}

pub(super) async fn calendar_list_tx(conn: &mut MySqlConnection) -> Result<Vec<CalendarRow>> {
    Ok(sqlx::query_as(CALENDAR_LIST).fetch_all(&mut *conn).await?)
}

pub(super) async fn calendar_upsert(conn: &mut MySqlConnection, c: &CalendarRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO calendar (name, definition, updated_at) VALUES (?, ?, NOW(6)) \
         ON DUPLICATE KEY UPDATE updated_at = IF(definition = VALUES(definition), updated_at, VALUES(updated_at)), \
         definition = VALUES(definition)",
    )
    .bind(&c.name)
    .bind(&c.definition)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn calendar_delete(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM calendar WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
