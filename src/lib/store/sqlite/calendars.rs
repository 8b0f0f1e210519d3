//! SQLite: business calendars (`calendars.xml`), each a row of JSON.

use super::*;

pub(super) async fn calendar_list(pool: &SqlitePool) -> Result<Vec<CalendarRow>> {
    Ok(
        sqlx::query_as("SELECT name, definition FROM calendar ORDER BY name")
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn calendar_list_tx(conn: &mut SqliteConnection) -> Result<Vec<CalendarRow>> {
    Ok(
        sqlx::query_as("SELECT name, definition FROM calendar ORDER BY name")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn calendar_upsert(conn: &mut SqliteConnection, c: &CalendarRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO calendar (name, definition, updated_at) VALUES (?, ?, {NOW}) \
         ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at \
         WHERE calendar.definition <> excluded.definition"
    ))
    .bind(&c.name)
    .bind(&c.definition)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn calendar_delete(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM calendar WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
