//! PostgreSQL: business calendars (`calendars.xml`), each a row of JSON.

use super::*;

pub(super) async fn calendar_list(pool: &PgPool) -> Result<Vec<CalendarRow>> {
    Ok(
        sqlx::query_as("SELECT name, definition FROM calendar ORDER BY name COLLATE \"C\"")
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn calendar_list_tx(conn: &mut PgConnection) -> Result<Vec<CalendarRow>> {
    Ok(
        sqlx::query_as("SELECT name, definition FROM calendar ORDER BY name COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn calendar_upsert(conn: &mut PgConnection, c: &CalendarRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO calendar (name, definition, updated_at) VALUES ($1, $2, now()) \
         ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at \
         WHERE calendar.definition <> excluded.definition",
    )
    .bind(&c.name)
    .bind(&c.definition)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn calendar_delete(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM calendar WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
