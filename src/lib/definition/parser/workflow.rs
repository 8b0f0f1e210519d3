//! `<work-flow>`: root attributes, control nodes, run-time parameters; actions and the coordinator
//! are read by their own modules.

use super::super::model::{MailLevel, Node, NodeKind, ParamDecl, Workflow};
use super::super::xml::Element;
use super::schema;
use super::{actions, coordinator, Ctx, Edge, NodeInfo, ParsedWorkflow};

pub(super) fn parse(ctx: &mut Ctx<'_>, root: &Element) -> Option<ParsedWorkflow> {
    let subject = format!("<{}>", root.name);
    ctx.allow(root, &subject, &schema::WORKFLOW);
    let name = ctx.required(root, &subject, "name");
    if let Some(n) = &name {
        ctx.safe_name(root, "workflow", n);
    }
    let wf_subject = match &name {
        Some(n) => format!("workflow \"{n}\""),
        None => subject.clone(),
    };
    let mail_level = match root.attr("mail-level") {
        Some(v) => mail_levels(ctx, root, &wf_subject, v),
        None => vec![MailLevel::Failed],
    };
    let mail_receivers = root
        .attr("mail-receivers")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let alert_channels = root
        .attr("alert-channels")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let instance_limit = ctx.number_attr(root, &wf_subject, "instance-limit", 1u32, 1);
    let retention_days = root
        .attr("retention-days")
        .is_some()
        .then(|| ctx.number_attr(root, &wf_subject, "retention-days", 1u32, 1));
    let lost_times = super::lost_times(ctx, root, &wf_subject);
    let priority = ctx.number_attr(root, &wf_subject, "priority", 0i64, i64::MIN);

    let mut coordinator = None;
    let mut coordinator_site = None;
    let mut params = Vec::new();
    let mut param_list_seen = false;
    let mut nodes = Vec::new();
    let mut infos = Vec::new();
    for el in root.elements() {
        match el.name.as_str() {
            "coordinator" => {
                if coordinator_site.is_some() {
                    ctx.error(el, format!("{wf_subject} has more than one <coordinator>"));
                    continue;
                }
                coordinator_site = Some(ctx.site(el));
                coordinator = coordinator::parse_inline(ctx, el);
            }
            "param-list" => {
                if param_list_seen {
                    ctx.error(el, format!("{wf_subject} has more than one <param-list>"));
                    continue;
                }
                param_list_seen = true;
                params = param_decls(ctx, el);
            }
            "start" | "end" | "kill" | "fork" | "join" | "action" => {
                if let Some((node, info)) = node(ctx, el) {
                    nodes.push(node);
                    infos.push(info);
                }
            }
            _ => {}
        }
    }
    let dir = ctx
        .optional(root, "dir")
        .unwrap_or_else(|| "/tmp".to_string());
    if dir.split('/').any(|seg| seg == "." || seg == "..") {
        // scopes compare dirs as text: `/a/../b` would be inside `/a` and outside `/b`
        ctx.error(
            root,
            format!(
                "{wf_subject}: dir \"{dir}\" has a `.` or `..` segment; write the dir as it is"
            ),
        );
    }
    let workflow = Workflow {
        name: name?,
        creator: ctx
            .optional(root, "creator")
            .unwrap_or_else(|| "Unknown".to_string()),
        description: root.attr("desc").unwrap_or("").trim().to_string(),
        dir,
        mail_level,
        mail_receivers,
        alert_channels,
        instance_limit,
        retention_days,
        lost_times,
        priority,
        coordinator,
        params,
        nodes,
    };
    Some(ParsedWorkflow {
        workflow,
        root: ctx.site(root),
        coordinator_site,
        nodes: infos,
        refs: std::mem::take(&mut ctx.refs),
        param_uses: std::mem::take(&mut ctx.param_uses),
        workday_uses: std::mem::take(&mut ctx.workday_uses),
    })
}

/// `W_SUCCESSED,W_FAILED` or `成功,失败,杀死`, spaces around items allowed.
fn mail_levels(ctx: &mut Ctx<'_>, root: &Element, subject: &str, value: &str) -> Vec<MailLevel> {
    let mut levels = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let level = match item {
            "W_SUCCESSED" | "成功" => MailLevel::Succeeded,
            "W_FAILED" | "失败" => MailLevel::Failed,
            "W_KILLED" | "杀死" => MailLevel::Killed,
            other => {
                ctx.error(
                    root,
                    format!(
                        "{subject}: unknown mail-level \"{other}\": expected W_SUCCESSED/成功, W_FAILED/失败 or W_KILLED/杀死"
                    ),
                );
                continue;
            }
        };
        if !levels.contains(&level) {
            levels.push(level);
        }
    }
    levels
}

/// The run-time `<param-list>` directly under the root (ours).
fn param_decls(ctx: &mut Ctx<'_>, list: &Element) -> Vec<ParamDecl> {
    ctx.allow(list, "<param-list>", &schema::WORKFLOW_PARAM_LIST);
    let mut out: Vec<ParamDecl> = Vec::new();
    for p in list.children_named("param") {
        ctx.allow(p, "<param>", &schema::WORKFLOW_PARAM);
        let Some(name) = ctx.required(p, "<param>", "name") else {
            continue;
        };
        ctx.param_name(p, &name);
        if out.iter().any(|d| d.name == name) {
            ctx.error(p, format!("parameter \"{name}\" is declared twice"));
            continue;
        }
        let subject = format!("parameter \"{name}\"");
        let default = p.attr("value").map(|v| ctx.template(p, &subject, v));
        out.push(ParamDecl { name, default });
    }
    out
}

fn node(ctx: &mut Ctx<'_>, el: &Element) -> Option<(Node, NodeInfo)> {
    let kind_name = el.name.as_str();
    let name = ctx.required(el, &format!("<{kind_name}>"), "name");
    if let Some(n) = &name {
        ctx.safe_name(el, "node", n);
    }
    let label = match &name {
        Some(n) => format!("{kind_name} \"{n}\""),
        None => format!("<{kind_name}>"),
    };
    let mut edges = Vec::new();
    let kind = match kind_name {
        "start" => {
            ctx.allow(el, &label, &schema::START);
            let to = to_attr(ctx, el, &label, &mut edges);
            NodeKind::Start {
                to: to.unwrap_or_default(),
            }
        }
        "end" => {
            ctx.allow(el, &label, &schema::END);
            NodeKind::End
        }
        "kill" => {
            ctx.allow(el, &label, &schema::KILL);
            if let Some(m) = el.child("message") {
                ctx.allow(m, &format!("<message> of {label}"), &schema::KILL_MESSAGE);
            }
            let text = el
                .child("message")
                .map(|m| m.text().trim().to_string())
                .unwrap_or_default();
            let msg_el = el.child("message").unwrap_or(el);
            NodeKind::Kill {
                message: ctx.template(msg_el, &format!("<message> of {label}"), &text),
            }
        }
        "fork" => {
            ctx.allow(el, &label, &schema::FORK);
            let mut paths = Vec::new();
            for p in el.children_named("path") {
                ctx.allow(p, &format!("<path> of {label}"), &schema::FORK_PATH);
                if let Some(to) = ctx.required(p, &format!("<path> of {label}"), "to") {
                    edges.push(Edge {
                        to: to.clone(),
                        via: "<path>",
                        site: ctx.site(p),
                    });
                    paths.push(to);
                }
            }
            NodeKind::Fork { paths }
        }
        "join" => {
            ctx.allow(el, &label, &schema::JOIN);
            let to = to_attr(ctx, el, &label, &mut edges);
            NodeKind::Join {
                to: to.unwrap_or_default(),
            }
        }
        "action" => NodeKind::Action(Box::new(actions::parse(ctx, el, &label, &mut edges))),
        _ => unreachable!("caller dispatches only node elements"),
    };
    let name = name?;
    let node = Node {
        name,
        line: el.pos.line,
        kind,
    };
    Some((
        node,
        NodeInfo {
            site: ctx.site(el),
            label,
            edges,
        },
    ))
}

fn to_attr(ctx: &mut Ctx<'_>, el: &Element, label: &str, edges: &mut Vec<Edge>) -> Option<String> {
    let to = ctx.required(el, label, "to")?;
    edges.push(Edge {
        to: to.clone(),
        via: "to",
        site: ctx.site(el),
    });
    Some(to)
}
