//! The workflow page's backfill card: a form that plans (dry run) or starts a backfill of the
//! coordinator's past slots, and the workflow's recent backfills with their progress and a cancel
//! button. The form posts to `POST /api/v1/workflows/{name}/backfill`; the script renders a dry
//! run's plan in place.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup};

use crate::http::api::backfills::summaries;
use crate::http::auth::Caller;
use crate::http::error::ApiResult;
use crate::http::AppState;
use crate::state::BackfillStatus;
use crate::store::TokenRole;

/// The card, for a workflow whose coordinator has a cron (`None` without one: nothing to backfill).
pub(crate) async fn card(
    state: &AppState,
    caller: &Caller,
    workflow: &str,
    timezone: Option<&str>,
    name_enc: &str,
) -> ApiResult<Markup> {
    let Some(tz) = timezone else {
        return Ok(html! {});
    };
    let op = caller.can(TokenRole::Operator);
    let list = summaries(state, caller, Some(workflow.to_string()), 10).await?;
    // the range on the coordinator's clock, as it was asked for
    let zone: Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let fmt = |t: DateTime<Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
    Ok(html! {
        div.card #backfill style="margin-bottom:16px" {
            h2 { "Backfill" span.grow {} span.small.muted { "past cron slots after the calendar, in " (tz) } }
            @if op {
                div.body { form.backfill data-backfill={"/api/v1/workflows/" (name_enc) "/backfill"} {
                    div.bf-row {
                        label { span { "From" } input type="text" name="from" placeholder="2026-10-01" required; }
                        label { span { "To" } input type="text" name="to" placeholder="2026-10-10 [23:00]" required; }
                        label { span { "Parallel" } input type="number" name="parallel" value="1" min="1" max="64"; }
                        label { span { "Reprocess" } select name="reprocess" {
                            option value="missing" selected { "missing slots" }
                            option value="failed" { "missing + failed" }
                            option value="all" { "every slot" }
                        } }
                        label { span { "Priority" } input type="number" name="priority" placeholder="task's − 1"; }
                    }
                    div.bf-row {
                        label.check { input type="checkbox" name="reverse"; " newest first" }
                        label.check { input type="checkbox" name="blood"; " also run downstream (blood)" }
                        span.grow {}
                        button.btn type="submit" name="dry_run" value="1" { "Preview slots" }
                        button.btn.primary type="submit" name="dry_run" value="" { "⟲ Start backfill" }
                    }
                    div #backfill-plan {}
                } }
            }
            @if list.is_empty() {
                div.body.small.muted { "No backfill yet." }
            } @else {
                div.flush { table #backfills {
                    thead { tr { th { "#" } th { "Range (" (tz) ")" } th { "Policy" } th { "Status" } th { "Progress" } th { "By" } th {} } }
                    tbody { @for s in &list {
                        @let b = &s.backfill;
                        @let p = &s.progress;
                        @let runs = p.total - p.skipped;
                        @let done = p.succeeded + p.failed;
                        tr data-backfill=(b.id) {
                            td.mono { (b.id) }
                            td.small.nowrap { (fmt(b.range_from)) " → " (fmt(b.range_to)) }
                            td.small { span.mono { (b.reprocess) } " ×" (b.parallel) @if b.reverse { " ↓" } @if b.blood { " blood" } }
                            td { span class={"badge st-" (b.status.as_str())} { (b.status.as_str()) } }
                            td style="min-width:180px" {
                                div.bar title={(done) " of " (runs) " ended"} { i style={"width:" ((done * 100).checked_div(runs).unwrap_or(100)) "%"} {} }
                                div.small.muted {
                                    (p.succeeded) " ok"
                                    @if p.failed > 0 { " · " span.bad { (p.failed) " failed" } }
                                    @if p.live > 0 { " · " (p.live) " running" }
                                    @if p.waiting > 0 { " · " (p.waiting) " waiting" }
                                    @if p.skipped > 0 { " · " (p.skipped) " skipped" }
                                }
                            }
                            td.small { (b.created_by) }
                            td { @if op && b.status == BackfillStatus::Running {
                                button.btn.sm.danger data-post={"/api/v1/backfills/" (b.id) "/cancel"} data-confirm="Cancel it?" { "Cancel" }
                            } }
                        }
                    } }
                } }
            }
        }
    })
}
