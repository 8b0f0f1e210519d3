//! `<coordinator>` inside a workflow, and the pre-2.9 coordinator files in every shape of the
//! original corpus:
//! - `<trigger><cron config/><depend-list><depend wf/></depend-list></trigger>` with
//!   `<workflow-list><workflow path/></workflow-list>`;
//! - `<depend-list cron><workflow name/></depend-list>` with `<trigger-list><workflow name/></trigger-list>`;
//! - both with `<param-list>`.

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::super::cron::CronSpec;
use super::super::deadline::Deadline;
use super::super::model::{Catchup, Coordinator, Param, DEFAULT_MAX_CATCHUP};
use super::super::xml::Element;
use super::schema::{self, ElementSpec};
use super::{Ctx, LegacyCoordinator, RefKind, Site};

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub(super) fn parse_inline(ctx: &mut Ctx<'_>, el: &Element) -> Option<Coordinator> {
    let subject = "<coordinator>";
    ctx.allow(el, subject, &schema::COORDINATOR);
    let mut c = common(ctx, el, subject, "start-time", "end-time");
    if let Some(v) = ctx.optional(el, "catchup") {
        match Catchup::parse(&v) {
            Some(p) => c.catchup = p,
            None => ctx.error(
                el,
                format!("{subject}: catchup must be latest, all or none, not \"{v}\""),
            ),
        }
    }
    c.max_catchup = ctx.number_attr(el, subject, "max-catchup", DEFAULT_MAX_CATCHUP, 1);
    if let Some(name) = ctx.optional(el, "calendar") {
        ctx.reference(RefKind::Calendar, &name, el);
        c.calendar = Some(name);
    }
    for list in el.children_named("depend-list") {
        depend_list(
            ctx,
            list,
            &mut c,
            &schema::DEPEND_LIST,
            &schema::DEPEND_WORKFLOW,
            "name",
        );
    }
    if let Some(text) = ctx.optional(el, "deadline") {
        match Deadline::parse(&text) {
            // a deadline is counted from a cron slot: without one there is nothing to be late for
            Ok(_) if c.cron.is_none() => ctx.error(
                el,
                format!("{subject}: deadline \"{text}\" needs a cron: a deadline is counted from each cron slot"),
            ),
            Ok(d) => c.deadline = Some(d),
            Err(e) => ctx.error(el, format!("{subject}: {e}")),
        }
    }
    if let Some(list) = el.child("param-list") {
        c.params = params(
            ctx,
            list,
            &schema::COORDINATOR_PARAM_LIST,
            &schema::COORDINATOR_PARAM,
        );
    }
    Some(c)
}

pub(super) fn parse_legacy(ctx: &mut Ctx<'_>, root: &Element) -> Option<LegacyCoordinator> {
    let name = ctx.required(root, "<coordinator>", "name");
    let subject = match &name {
        Some(n) => format!("coordinator \"{n}\""),
        None => "<coordinator>".to_string(),
    };
    // `dir` and `desc` described the coordinator itself; it now lives in the workflow, which has its own.
    ctx.allow(root, &subject, &schema::LEGACY_COORDINATOR);
    let (start_attr, end_attr) = if root.attr("start").is_some() || root.attr("end").is_some() {
        ("start", "end")
    } else {
        ("start-time", "end-time")
    };
    let mut c = common(ctx, root, &subject, start_attr, end_attr);
    for list in root.children_named("depend-list") {
        depend_list(
            ctx,
            list,
            &mut c,
            &schema::LEGACY_DEPEND_LIST,
            &schema::LEGACY_DEPEND_WORKFLOW,
            "name",
        );
    }
    for trigger in root.children_named("trigger") {
        let tsub = format!("<trigger> of {subject}");
        ctx.allow(trigger, &tsub, &schema::LEGACY_TRIGGER);
        for cron in trigger.children_named("cron") {
            ctx.allow(cron, &format!("<cron> of {subject}"), &schema::LEGACY_CRON);
            if let Some(text) = ctx.required(cron, &format!("<cron> of {subject}"), "config") {
                set_cron(ctx, cron, &mut c, &text);
            }
        }
        for list in trigger.children_named("depend-list") {
            depend_list(
                ctx,
                list,
                &mut c,
                &schema::LEGACY_DEPEND_LIST,
                &schema::LEGACY_DEPEND,
                "wf",
            );
        }
    }
    let mut targets = Vec::new();
    for (list_spec, item_spec, attr) in [
        (
            &schema::LEGACY_TRIGGER_LIST,
            &schema::LEGACY_TRIGGER_WORKFLOW,
            "name",
        ),
        (
            &schema::LEGACY_WORKFLOW_LIST,
            &schema::LEGACY_LISTED_WORKFLOW,
            "path",
        ),
    ] {
        for list in root.children_named(list_spec.name) {
            let lsub = format!("<{}> of {subject}", list_spec.name);
            ctx.allow(list, &lsub, list_spec);
            for w in list.children_named("workflow") {
                ctx.allow(w, &format!("<workflow> in {lsub}"), item_spec);
                if let Some(target) = ctx.required(w, &format!("<workflow> in {lsub}"), attr) {
                    targets.push((target, ctx.site(w)));
                }
            }
        }
    }
    if targets.is_empty() {
        ctx.error(
            root,
            format!("{subject} triggers no workflow: add <trigger-list><workflow name=\"...\"/></trigger-list>"),
        );
    }
    if let Some(list) = root.child("param-list") {
        c.params = params(
            ctx,
            list,
            &schema::COORDINATOR_PARAM_LIST,
            &schema::COORDINATOR_PARAM,
        );
    }
    Some(LegacyCoordinator {
        name: name?,
        coordinator: c,
        root: Site {
            pos: root.pos,
            element: root.name.clone(),
        },
        targets,
        refs: std::mem::take(&mut ctx.refs),
        param_uses: std::mem::take(&mut ctx.param_uses),
    })
}

/// `is-enabled`, the time window and the zone, shared by both forms.
fn common(
    ctx: &mut Ctx<'_>,
    el: &Element,
    subject: &str,
    start_attr: &str,
    end_attr: &str,
) -> Coordinator {
    let enabled = ctx.bool_attr(el, subject, "is-enabled", true);
    let timezone = ctx.optional(el, "timezone").filter(|tz| match tz.parse::<Tz>() {
        Ok(_) => true,
        Err(_) => {
            ctx.error(el, format!("{subject}: unknown time zone \"{tz}\": expected an IANA name such as Asia/Shanghai"));
            false
        }
    });
    let mut window = |attr: &str| {
        let v = ctx.optional(el, attr)?;
        match NaiveDateTime::parse_from_str(&v, TIME_FORMAT) {
            Ok(t) => Some(t),
            Err(_) => {
                ctx.error(
                    el,
                    format!(
                        "{subject}: {attr} \"{v}\" is not a time in the form yyyy-MM-dd HH:mm:ss"
                    ),
                );
                None
            }
        }
    };
    let start_time = window(start_attr);
    let end_time = window(end_attr);
    if let (Some(s), Some(e)) = (start_time, end_time) {
        if s >= e {
            ctx.error(
                el,
                format!("{subject}: {start_attr} {s} is not before {end_attr} {e}"),
            );
        }
    }
    Coordinator {
        enabled,
        cron: None,
        timezone,
        depends: Vec::new(),
        params: Vec::new(),
        start_time,
        end_time,
        catchup: Catchup::default(),
        max_catchup: DEFAULT_MAX_CATCHUP,
        deadline: None,
        calendar: None,
        business_days: None,
    }
}

fn set_cron(ctx: &mut Ctx<'_>, el: &Element, c: &mut Coordinator, text: &str) {
    if c.cron.is_some() {
        ctx.error(el, "coordinator has more than one cron".to_string());
        return;
    }
    match CronSpec::parse(text) {
        Ok(parsed) => {
            if let Some(w) = parsed.warning {
                ctx.warn(el, w);
            }
            c.cron = Some(parsed.spec.as_str().to_string());
        }
        Err(e) => ctx.error(el, e),
    }
}

/// `<depend-list cron>` with upstream workflows named by `item`'s `attr`.
fn depend_list(
    ctx: &mut Ctx<'_>,
    list: &Element,
    c: &mut Coordinator,
    spec: &ElementSpec,
    item: &ElementSpec,
    attr: &str,
) {
    ctx.allow_attrs(list, "<depend-list>", spec.attrs);
    let child = item.name;
    ctx.allow_children(list, "<depend-list>", &[child]);
    if let Some(cron) = ctx.optional(list, "cron") {
        set_cron(ctx, list, c, &cron);
    }
    for w in list.children_named(child) {
        ctx.allow(w, &format!("<{child}> in <depend-list>"), item);
        let Some(name) = ctx.required(w, &format!("<{child}> in <depend-list>"), attr) else {
            continue;
        };
        if c.depends.contains(&name) {
            ctx.error(
                w,
                format!("upstream workflow \"{name}\" is listed twice in <depend-list>"),
            );
            continue;
        }
        ctx.reference(RefKind::Depend, &name, w);
        c.depends.push(name);
    }
}

/// Coordinator parameters, in order; each use of `${param:x}` is tagged with its parameter's index.
fn params(
    ctx: &mut Ctx<'_>,
    list: &Element,
    list_spec: &ElementSpec,
    param_spec: &ElementSpec,
) -> Vec<Param> {
    ctx.allow(list, "<param-list>", list_spec);
    let mut out: Vec<Param> = Vec::new();
    for p in list.children_named("param") {
        ctx.allow(p, "<param>", param_spec);
        let Some(name) = ctx.required(p, "<param>", "name") else {
            continue;
        };
        ctx.param_name(p, &name);
        let subject = format!("coordinator parameter \"{name}\"");
        let Some(value) = p.attr("value") else {
            ctx.error(p, format!("{subject} has no value attribute"));
            continue;
        };
        if out.iter().any(|q| q.name == name) {
            ctx.error(p, format!("{subject} is declared twice"));
            continue;
        }
        let first_use = ctx.param_uses.len();
        let value = ctx.template(p, &subject, value);
        for u in &mut ctx.param_uses[first_use..] {
            u.coord_param = Some(out.len());
        }
        out.push(Param { name, value });
    }
    out
}
