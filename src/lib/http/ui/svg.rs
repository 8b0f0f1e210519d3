//! Inline SVG: a workflow's DAG from the layered layout, and the dashboard's 14-day chart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::http::dag::{layout, NodeView};

/// Column pitch of an action column (its width plus the gap to the next).
const COL: f64 = 196.0;
const ROW: f64 = 74.0;
const W: f64 = 150.0;
const H: f64 = 46.0;
const PAD: f64 = 16.0;

pub(crate) fn is_control(kind: &str) -> bool {
    matches!(kind, "start" | "end" | "kill" | "fork" | "join")
}

/// Column geometry: control-only columns are narrow, so a chain reads as a chain.
struct Columns {
    /// Left edge and width of each column.
    x: Vec<(f64, f64)>,
    len: Vec<usize>,
    breadth: usize,
}

impl Columns {
    fn center(&self, pos: (usize, usize)) -> (f64, f64) {
        let (left, w) = self.x[pos.0];
        // centre each column vertically against the widest one
        let offset = (self.breadth - self.len[pos.0]) as f64 * ROW / 2.0;
        (left + w / 2.0, PAD + offset + pos.1 as f64 * ROW + H / 2.0)
    }

    fn width(&self) -> f64 {
        self.x.last().map_or(0.0, |(l, w)| l + w) + PAD
    }
}

/// Where the DAG view draws each node (its centre) and how big the drawing is; the editor opens
/// a workflow with the same placement.
pub(crate) struct Placement {
    pub at: BTreeMap<String, (f64, f64)>,
    pub width: f64,
    pub height: f64,
}

pub(crate) fn placement(nodes: &[NodeView]) -> Placement {
    let l = layout(nodes);
    let mut len = vec![0usize; l.layers];
    let mut control_only = vec![true; l.layers];
    for n in nodes {
        if let Some(&(c, _)) = l.pos.get(&n.name) {
            len[c] += 1;
            control_only[c] &= is_control(&n.kind);
        }
    }
    let mut x = Vec::with_capacity(l.layers);
    let mut left = PAD;
    for &narrow in &control_only {
        let w = if narrow { 40.0 } else { W };
        x.push((left, w));
        left += w + COL - W;
    }
    let cols = Columns {
        x,
        len,
        breadth: l.breadth,
    };
    Placement {
        at: l
            .pos
            .iter()
            .map(|(n, &p)| (n.clone(), cols.center(p)))
            .collect(),
        width: cols.width(),
        height: PAD * 2.0 + (l.breadth.max(1) - 1) as f64 * ROW + H + 12.0,
    }
}

/// The DAG; `states` (node → task status) colours it, as on an instance page.
pub(crate) fn dag(nodes: &[NodeView], states: &BTreeMap<String, String>) -> Markup {
    if nodes.is_empty() {
        return html! { div.empty { "no nodes" } };
    }
    let Placement { at, width, height } = placement(nodes);
    let at = |name: &str| at.get(name).copied();
    let half = |kind: &str| if is_control(kind) { 17.0 } else { W / 2.0 };
    let kinds: BTreeMap<&str, &str> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.kind.as_str()))
        .collect();
    html! {
        // scales down to the card's width, never up
        svg xmlns="http://www.w3.org/2000/svg" width="100%" style={"max-width:" (width) "px"} viewBox={"0 0 " (width) " " (height)} role="img" aria-label="workflow graph" {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M0 0 L10 5 L0 10 z" fill="#94a3b8" {}
                }
                marker #arrow-err viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M0 0 L10 5 L0 10 z" fill="#f87171" {}
                }
            }
            @for n in nodes {
                @for e in &n.edges {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (at(&n.name), at(&e.to)) {
                        @let sx = x1 + half(&n.kind);
                        @let tx = x2 - half(kinds.get(e.to.as_str()).copied().unwrap_or("")) - 2.0;
                        @let mid = (sx + tx) / 2.0;
                        path class={"e " (e.kind)} d=(format!("M{sx:.1} {y1:.1} C{mid:.1} {y1:.1}, {mid:.1} {y2:.1}, {tx:.1} {y2:.1}"))
                            marker-end=(if e.kind == "error" { "url(#arrow-err)" } else { "url(#arrow)" }) {}
                    }
                }
            }
            @for n in nodes {
                @if let Some((x, y)) = at(&n.name) {
                    @let st = states.get(&n.name).map(String::as_str).unwrap_or("none");
                    g class={"n st-" (st)} data-node=(n.name) {
                        title { (n.name) " (" (n.kind) ")" @if st != "none" { ": " (st) } }
                        @match n.kind.as_str() {
                            "start" | "end" => {
                                circle cx=(x) cy=(y) r="15" {}
                                text x=(x) y=(y + 32.0) text-anchor="middle" class="k" { (n.name) }
                            }
                            "kill" => {
                                polygon points=(octagon(x, y, 16.0)) {}
                                text x=(x) y=(y + 33.0) text-anchor="middle" class="k" { (n.name) }
                            }
                            "fork" | "join" => {
                                polygon points=(format!("{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", x, y - 17.0, x + 17.0, y, x, y + 17.0, x - 17.0, y)) {}
                                text x=(x) y=(y + 33.0) text-anchor="middle" class="k" { (n.name) }
                            }
                            _ => {
                                rect x=(x - W / 2.0) y=(y - H / 2.0) width=(W) height=(H) rx="9" {}
                                text x=(x) y=(y - 2.0) text-anchor="middle" { (ellipsis(&n.name, 20)) }
                                text x=(x) y=(y + 14.0) text-anchor="middle" class="k" { (n.kind) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn octagon(x: f64, y: f64, r: f64) -> String {
    (0..8)
        .map(|i| {
            let a = std::f64::consts::PI / 8.0 + i as f64 * std::f64::consts::PI / 4.0;
            format!("{:.1},{:.1}", x + r * a.cos(), y + r * a.sin())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// One day of the chart.
pub(crate) struct Day {
    pub label: String,
    pub succeeded: i64,
    pub failed: i64,
    pub killed: i64,
}

/// Stacked bars per day: succeeded, failed, killed.
pub(crate) fn chart(days: &[Day]) -> Markup {
    let (w, h, left, bottom, top) = (720.0, 190.0, 34.0, 24.0, 10.0);
    let max = days
        .iter()
        .map(|d| d.succeeded + d.failed + d.killed)
        .max()
        .unwrap_or(0)
        .max(1);
    // four integer steps of a round size (1, 2, 5 × 10^k), so every tick is a whole number
    let mut step = 1i64;
    while step * 4 < max {
        step = match step.to_string().as_bytes()[0] {
            b'1' => step * 2,
            b'2' => step / 2 * 5,
            _ => step * 2,
        };
    }
    let top_val = step * 4;
    let plot_h = h - bottom - top;
    let slot = (w - left) / days.len().max(1) as f64;
    let bar = (slot * 0.62).min(30.0);
    let y_of = |v: f64| top + plot_h - v / top_val as f64 * plot_h;
    let mut segments = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0.0f64;
        for (v, color, what) in [
            (d.succeeded, "#22c55e", "succeeded"),
            (d.failed, "#ef4444", "failed"),
            (d.killed, "#f59e0b", "killed"),
        ] {
            if v > 0 {
                let (y0, y1) = (y_of(base), y_of(base + v as f64));
                segments.push((
                    x,
                    y1,
                    (y0 - y1).max(1.0),
                    color,
                    format!("{}: {v} {what}", d.label),
                ));
                base += v as f64;
            }
        }
    }
    html! {
        svg.chart viewBox={"0 0 " (w) " " (h)} width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="instances per day" {
            @for i in 0..=4 {
                @let v = top_val as f64 * i as f64 / 4.0;
                @let y = y_of(v);
                line.grid x1=(left) x2=(w) y1=(y) y2=(y) {}
                text x=(left - 6.0) y=(y + 4.0) text-anchor="end" { (v.round() as i64) }
            }
            @for (x, y, height, color, label) in &segments {
                rect x=(x) y=(y) width=(bar) height=(height) rx="2" fill=(color) { title { (label) } }
            }
            @for (i, d) in days.iter().enumerate() {
                text x=(left + slot * i as f64 + slot / 2.0) y=(h - 6.0) text-anchor="middle" { (d.label) }
            }
        }
    }
}

/// One row of an instance's timeline: a task and its attempts.
pub(crate) struct GanttRow {
    pub node: String,
    pub task_id: i64,
    /// Waiting for a worker: from when it became ready until now (a ready task only).
    pub queued_since: Option<DateTime<Utc>>,
    /// `(start, end, state, what)` per attempt; the running one ends now.
    pub bars: Vec<(DateTime<Utc>, DateTime<Utc>, String, String)>,
}

/// An instance's timeline: one row per task, one bar per attempt coloured by how it ended, so the
/// critical path (the longest chain of bars) and every retry and lost attempt show.
pub(crate) fn gantt(rows: &[GanttRow], now: DateTime<Utc>) -> Markup {
    let starts = rows
        .iter()
        .flat_map(|r| r.bars.iter().map(|b| b.0).chain(r.queued_since));
    // a queued task waits until now; otherwise the chart ends with the last attempt
    let waiting = rows.iter().any(|r| r.queued_since.is_some()).then_some(now);
    let ends = rows.iter().flat_map(|r| r.bars.iter().map(|b| b.1));
    let (Some(t0), Some(t1)) = (starts.min(), ends.chain(waiting).max()) else {
        return html! { p.muted.small { "No task has started yet." } };
    };
    let (label_w, w, row_h, top) = (170.0, 980.0, 26.0, 22.0);
    let span = ((t1 - t0).num_milliseconds().max(1)) as f64;
    let x_of = |t: DateTime<Utc>| {
        label_w + (t - t0).num_milliseconds() as f64 / span * (w - label_w - 8.0)
    };
    let h = top + rows.len() as f64 * row_h + 6.0;
    let secs = span / 1000.0;
    let ticks: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            let s = secs * i as f64 / 4.0;
            let text = if secs >= 120.0 {
                format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
            } else {
                format!("{s:.1}s")
            };
            (label_w + (w - label_w - 8.0) * i as f64 / 4.0, text)
        })
        .collect();
    html! {
        svg.gantt viewBox={"0 0 " (w) " " (h)} width="100%" preserveAspectRatio="xMinYMin meet" role="img" aria-label="task timeline" {
            @for (x, text) in &ticks {
                line.grid x1=(x) x2=(x) y1=(top - 4.0) y2=(h) {}
                text.tick x=(x) y="12" text-anchor=(if *x >= w - 10.0 { "end" } else { "middle" }) { (text) }
            }
            @for (i, r) in rows.iter().enumerate() {
                @let y = top + i as f64 * row_h;
                g.row data-task=(r.task_id) data-node=(r.node) {
                    text.label x=(label_w - 10.0) y=(y + row_h / 2.0 + 4.0) text-anchor="end" { (r.node) }
                    @if let Some(q) = r.queued_since {
                        rect.st-ready x=(x_of(q)) y=(y + 9.0) width=((x_of(now) - x_of(q)).max(2.0)) height="8" rx="2" { title { (r.node) ": waiting for a worker" } }
                    }
                    @for (start, end, state, what) in &r.bars {
                        rect class={"bar st-" (state)} data-state=(state) x=(x_of(*start)) y=(y + 5.0) width=((x_of(*end) - x_of(*start)).max(2.0)) height=(row_h - 10.0) rx="3" { title { (what) } }
                    }
                }
            }
        }
    }
}

/// One sample of a worker's host for [`host_chart`].
pub(crate) struct HostPoint {
    pub at: DateTime<Utc>,
    pub cpu: Option<f64>,
    /// Memory in use, percent of the installed.
    pub mem: f64,
}

/// A worker host's CPU and memory (percent) from `from` to `to`, one line each.
pub(crate) fn host_chart(points: &[HostPoint], from: DateTime<Utc>, to: DateTime<Utc>) -> Markup {
    let at: Vec<DateTime<Utc>> = points.iter().map(|p| p.at).collect();
    let cpu: Vec<Option<f64>> = points.iter().map(|p| p.cpu).collect();
    let mem: Vec<Option<f64>> = points.iter().map(|p| Some(p.mem)).collect();
    percent_chart(
        "host",
        "CPU and memory",
        &at,
        &[("mem", &mem), ("cpu", &cpu)],
        from,
        to,
    )
}

/// Percent lines over time, from `from` to `to`: `lines` are (CSS class, one value per time of
/// `at`, `None` where there is none). A line breaks where samples are missing (the worker or
/// the master was down), so a gap is not drawn as a slope.
pub(crate) fn percent_chart(
    class: &str,
    label: &str,
    at: &[DateTime<Utc>],
    lines: &[(&str, &[Option<f64>])],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Markup {
    let (w, h, left, right, bottom, top) = (460.0, 150.0, 40.0, 8.0, 20.0, 8.0);
    let span = ((to - from).num_milliseconds().max(1)) as f64;
    let x_of = |t: DateTime<Utc>| {
        left + ((t - from).num_milliseconds() as f64 / span).clamp(0.0, 1.0) * (w - left - right)
    };
    let y_of = |v: f64| top + (1.0 - v.clamp(0.0, 100.0) / 100.0) * (h - top - bottom);
    // a gap is a step over three times the usual one
    let mut steps: Vec<i64> = at
        .windows(2)
        .map(|p| (p[1] - p[0]).num_milliseconds())
        .collect();
    steps.sort_unstable();
    let usual = steps
        .get(steps.len() / 2)
        .copied()
        .unwrap_or(60_000)
        .max(1_000);
    let path = |values: &[Option<f64>]| {
        let mut d = String::new();
        let mut prev: Option<DateTime<Utc>> = None;
        for (t, v) in at.iter().zip(values) {
            let Some(v) = v else {
                prev = None;
                continue;
            };
            let joined = prev.is_some_and(|p| (*t - p).num_milliseconds() <= usual * 3);
            d.push_str(&format!(
                "{}{:.1} {:.1} ",
                if joined { "L" } else { "M" },
                x_of(*t),
                y_of(*v)
            ));
            prev = Some(*t);
        }
        d
    };
    // whole hours
    let first = from.timestamp().div_euclid(3600) * 3600 + 3600;
    let ticks: Vec<(f64, String)> = (first..=to.timestamp())
        .step_by(3600)
        .filter_map(|s| DateTime::from_timestamp(s, 0))
        .map(|t| (x_of(t), t.format("%H:%M").to_string()))
        .collect();
    html! {
        svg.chart.(class) viewBox={"0 0 " (w) " " (h)} width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label=(label) {
            @for v in [0.0, 50.0, 100.0] {
                line.grid x1=(left) x2=(w - right) y1=(y_of(v)) y2=(y_of(v)) {}
                text x=(left - 6.0) y=(y_of(v) + 4.0) text-anchor="end" { (v) "%" }
            }
            @for (x, label) in &ticks {
                text x=(x) y=(h - 5.0) text-anchor=(if *x < left + 10.0 { "start" } else if *x > w - right - 10.0 { "end" } else { "middle" }) { (label) }
            }
            @for (line_class, values) in lines {
                path class=(line_class) d=(path(values)) {}
            }
        }
    }
}
