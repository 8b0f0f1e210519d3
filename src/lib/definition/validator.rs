//! Set-level checks: what needs more than one element or more than one file.
//!
//! Owns: attaching legacy coordinators, link and workflow references, parameter definitions, the
//! node graph of each workflow (one start, known targets, reachability, no cycles, fork/join shape)
//! and the graphs between workflows (dependencies, sub-workflow calls). Every problem is reported;
//! nothing stops at the first. A node graph with no cycle whose targets all exist ends every path in
//! an `<end>` or `<kill>` (the only nodes without successors), so that rule needs no check of its own.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::calendar::Calendar;
use super::model::{DbLink, FileLink, NodeKind, Pool};
use super::parser::implied_local;
use super::parser::{LegacyCoordinator, ParamUse, Parsed, ParsedWorkflow, Ref, RefKind, Site};
use super::{Diagnostic, Severity};

/// One file after parsing.
pub(crate) struct ParsedSource {
    pub path: PathBuf,
    pub text: String,
    pub parsed: Option<Parsed>,
}

/// A workflow ready to be stored: what `validate` hands back when the set is sound.
pub(crate) struct ValidWorkflow {
    pub file: PathBuf,
    pub text: String,
    pub workflow: super::model::Workflow,
}

pub(crate) struct Validated {
    pub workflows: Vec<ValidWorkflow>,
    pub db_links: Vec<DbLink>,
    pub file_links: Vec<FileLink>,
    pub calendars: Vec<Calendar>,
    pub pools: Vec<Pool>,
}

struct Entry {
    file: PathBuf,
    text: String,
    pw: ParsedWorkflow,
    /// Index into the legacy coordinators, when one was attached.
    legacy: Option<usize>,
}

struct Diags<'a>(&'a mut Vec<Diagnostic>);

impl Diags<'_> {
    fn error(&mut self, file: &Path, site: &Site, message: String) {
        self.push(Severity::Error, file, site, message);
    }

    fn warning(&mut self, file: &Path, site: &Site, message: String) {
        self.push(Severity::Warning, file, site, message);
    }

    fn push(&mut self, severity: Severity, file: &Path, site: &Site, message: String) {
        self.0.push(Diagnostic {
            severity,
            file: file.to_path_buf(),
            line: site.pos.line,
            col: site.pos.col,
            element: site.element.clone(),
            message,
        });
    }
}

pub(crate) fn validate(sources: Vec<ParsedSource>, out: &mut Vec<Diagnostic>) -> Validated {
    let mut d = Diags(out);
    let mut db_links: Vec<DbLink> = Vec::new();
    let mut file_links: Vec<FileLink> = Vec::new();
    let mut link_sites: HashMap<(bool, String), (PathBuf, Site)> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut legacies: Vec<(PathBuf, LegacyCoordinator)> = Vec::new();
    let mut calendars: Vec<Calendar> = Vec::new();
    let mut calendar_sites: HashMap<String, (PathBuf, Site)> = HashMap::new();
    let mut pools: Vec<(Pool, PathBuf, Site)> = Vec::new();

    for src in sources {
        match src.parsed {
            None => {}
            Some(Parsed::Workflow(pw)) => entries.push(Entry {
                file: src.path,
                text: src.text,
                pw: *pw,
                legacy: None,
            }),
            Some(Parsed::Coordinator(c)) => legacies.push((src.path, *c)),
            Some(Parsed::DbLinks(links)) => {
                for (link, site) in links {
                    if unique_link(&mut d, &mut link_sites, true, &link.name, &src.path, site) {
                        db_links.push(link);
                    }
                }
            }
            Some(Parsed::Calendars(cals)) => {
                for (cal, site) in cals {
                    if let Some((first_file, first)) = calendar_sites.get(&cal.name) {
                        let msg = format!(
                            "calendar \"{}\" is defined twice: {}:{} and here",
                            cal.name,
                            first_file.display(),
                            first.pos.line
                        );
                        d.error(&src.path, &site, msg);
                        continue;
                    }
                    calendar_sites.insert(cal.name.clone(), (src.path.clone(), site));
                    calendars.push(cal);
                }
            }
            Some(Parsed::FileLinks(links)) => {
                for (link, site) in links {
                    if unique_link(&mut d, &mut link_sites, false, &link.name, &src.path, site) {
                        file_links.push(link);
                    }
                }
            }
            Some(Parsed::Pools(list)) => {
                for (pool, site) in list {
                    if let Some((_, first_file, first)) =
                        pools.iter().find(|(p, _, _)| p.name == pool.name)
                    {
                        let msg = format!(
                            "pool \"{}\" is defined twice: {}:{} and here",
                            pool.name,
                            first_file.display(),
                            first.pos.line
                        );
                        d.error(&src.path, &site, msg);
                        continue;
                    }
                    pools.push((pool, src.path.clone(), site));
                }
            }
        }
    }
    if !file_links.iter().any(|l| l.name == "local") {
        file_links.push(implied_local());
    }

    // Workflow names: the first file keeps the name, later ones are errors naming both files.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let name = &e.pw.workflow.name;
        match by_name.get(name) {
            Some(&first) => {
                let msg = format!(
                    "workflow \"{name}\" is defined in both {} and {}",
                    entries[first].file.display(),
                    e.file.display()
                );
                d.error(&e.file, &e.pw.root, msg);
            }
            None => {
                by_name.insert(name.clone(), i);
            }
        }
    }

    attach_legacy(&mut d, &mut entries, &legacies, &by_name);
    resolve_pools(&mut d, &mut entries, &db_links, &link_sites, &pools);

    let db_names: BTreeSet<&str> = db_links.iter().map(|l| l.name.as_str()).collect();
    let file_names: BTreeSet<&str> = file_links.iter().map(|l| l.name.as_str()).collect();
    for e in &entries {
        check_graph(&mut d, e);
        check_params(&mut d, e, &legacies);
        check_calendar(&mut d, e, &calendars);
        for r in &e.pw.refs {
            check_ref(
                &mut d,
                &e.file,
                &[e.pw.workflow.name.as_str()],
                r,
                &db_names,
                &file_names,
                &by_name,
            );
        }
    }
    for (file, c) in &legacies {
        // A legacy coordinator's dependencies belong to the workflows it triggers.
        let triggered: Vec<&str> = c.targets.iter().map(|(t, _)| t.as_str()).collect();
        for r in &c.refs {
            check_ref(
                &mut d,
                file,
                &triggered,
                r,
                &db_names,
                &file_names,
                &by_name,
            );
        }
    }
    check_workflow_graphs(&mut d, &entries, &legacies, &by_name);

    let workflows = entries
        .into_iter()
        .enumerate()
        .filter(|(i, e)| by_name.get(&e.pw.workflow.name) == Some(i))
        .map(|(_, e)| {
            let mut workflow = e.pw.workflow;
            if let Some(c) = workflow.coordinator.as_mut() {
                // the days themselves go with the version: a rerun counts workdays as it did
                c.business_days = c
                    .calendar
                    .as_ref()
                    .and_then(|n| calendars.iter().find(|cal| &cal.name == n))
                    .cloned();
            }
            ValidWorkflow {
                file: e.file,
                text: e.text,
                workflow,
            }
        })
        .collect();
    Validated {
        workflows,
        db_links,
        file_links,
        calendars,
        pools: pools.into_iter().map(|(p, _, _)| p).collect(),
    }
}

/// The coordinator's `calendar` must name a calendar of the set, and a time expression counting
/// `workday`s needs one.
fn check_calendar(d: &mut Diags<'_>, e: &Entry, calendars: &[Calendar]) {
    for r in e.pw.refs.iter().filter(|r| r.kind == RefKind::Calendar) {
        if !calendars.iter().any(|c| c.name == r.name) {
            let defined: Vec<&str> = calendars.iter().map(|c| c.name.as_str()).collect();
            let msg = format!(
                "unknown calendar \"{}\": define it in calendars.xml ({})",
                r.name,
                if defined.is_empty() {
                    "none is defined".to_string()
                } else {
                    format!("defined: {}", defined.join(", "))
                }
            );
            d.error(&e.file, &r.site, msg);
        }
    }
    let has_calendar =
        e.pw.workflow
            .coordinator
            .as_ref()
            .is_some_and(|c| c.calendar.is_some());
    if let (false, Some(site)) = (has_calendar, e.pw.workday_uses.first()) {
        d.error(
            &e.file,
            site,
            "a time expression counts workdays, but the workflow's coordinator names no calendar: add calendar=\"NAME\" to <coordinator>".into(),
        );
    }
}

/// Checks every pool a db link or an action names, and gives each action on a pooled db link that
/// names no pool of its own the link's pool. An action whose links name different pools must name
/// one itself; `pool-slots` may not exceed the pool's slots (such an attempt could never start).
fn resolve_pools(
    d: &mut Diags<'_>,
    entries: &mut [Entry],
    db_links: &[DbLink],
    link_sites: &HashMap<(bool, String), (PathBuf, Site)>,
    pools: &[(Pool, PathBuf, Site)],
) {
    let defined = || {
        if pools.is_empty() {
            "none is defined".to_string()
        } else {
            let names: Vec<&str> = pools.iter().map(|(p, _, _)| p.name.as_str()).collect();
            format!("defined: {}", names.join(", "))
        }
    };
    let find = |name: &str| pools.iter().map(|(p, _, _)| p).find(|p| p.name == name);
    for link in db_links {
        let Some(pool) = &link.pool else { continue };
        if find(pool).is_none() {
            if let Some((file, site)) = link_sites.get(&(true, link.name.clone())) {
                let msg = format!(
                    "db link \"{}\" names unknown pool \"{pool}\": define it in pools.xml ({})",
                    link.name,
                    defined()
                );
                d.error(file, site, msg);
            }
        }
    }
    for e in entries.iter_mut() {
        for (node, info) in e.pw.workflow.nodes.iter_mut().zip(&e.pw.nodes) {
            let NodeKind::Action(a) = &mut node.kind else {
                continue;
            };
            if a.pool.is_none() {
                let mut inherited: Vec<(&str, &str)> = Vec::new();
                for name in a.db_links() {
                    let link = db_links.iter().find(|l| l.name == name);
                    if let Some(pool) = link.and_then(|l| l.pool.as_deref()) {
                        if !inherited.iter().any(|(_, p)| *p == pool) {
                            inherited.push((name, pool));
                        }
                    }
                }
                match inherited.as_slice() {
                    [] => {}
                    [(_, pool)] => a.pool = Some(pool.to_string()),
                    many => {
                        let list: Vec<String> = many
                            .iter()
                            .map(|(l, p)| format!("\"{l}\" (pool {p})"))
                            .collect();
                        let msg = format!(
                            "{} works on db links in different pools, {}: name its pool with pool=\"...\"",
                            info.label,
                            list.join(" and ")
                        );
                        d.error(&e.file, &info.site, msg);
                        continue;
                    }
                }
            }
            let Some(name) = &a.pool else { continue };
            match find(name) {
                None => {
                    let msg = format!(
                        "{} names unknown pool \"{name}\": define it in pools.xml ({})",
                        info.label,
                        defined()
                    );
                    d.error(&e.file, &info.site, msg);
                }
                Some(p) if a.pool_slots > p.slots => {
                    let msg = format!(
                        "{}: pool-slots is {} but pool \"{name}\" has only {} slots, so it could never start",
                        info.label, a.pool_slots, p.slots
                    );
                    d.error(&e.file, &info.site, msg);
                }
                Some(_) => {}
            }
        }
    }
}

fn unique_link(
    d: &mut Diags<'_>,
    seen: &mut HashMap<(bool, String), (PathBuf, Site)>,
    db: bool,
    name: &str,
    file: &Path,
    site: Site,
) -> bool {
    let what = if db { "db link" } else { "file link" };
    if let Some((first_file, first)) = seen.get(&(db, name.to_string())) {
        let msg = format!(
            "{what} \"{name}\" is defined twice: {}:{} and here",
            first_file.display(),
            first.pos.line
        );
        d.error(file, &site, msg);
        return false;
    }
    seen.insert((db, name.to_string()), (file.to_path_buf(), site));
    true
}

/// A legacy coordinator becomes the coordinator of each workflow it triggers.
fn attach_legacy(
    d: &mut Diags<'_>,
    entries: &mut [Entry],
    legacies: &[(PathBuf, LegacyCoordinator)],
    by_name: &HashMap<String, usize>,
) {
    let mut names: HashMap<&str, &Path> = HashMap::new();
    for (li, (file, c)) in legacies.iter().enumerate() {
        if let Some(first) = names.insert(&c.name, file) {
            let msg = format!(
                "coordinator \"{}\" is defined in both {} and {}",
                c.name,
                first.display(),
                file.display()
            );
            d.error(file, &c.root, msg);
        }
        for (target, site) in &c.targets {
            let Some(&wi) = by_name.get(target) else {
                d.error(
                    file,
                    site,
                    format!(
                        "coordinator \"{}\" triggers workflow \"{target}\", which is not defined",
                        c.name
                    ),
                );
                continue;
            };
            let e = &mut entries[wi];
            if let Some(own) = &e.pw.coordinator_site {
                let msg = format!(
                    "coordinator \"{}\" triggers workflow \"{target}\", which has its own <coordinator> at {}:{}: keep one of them",
                    c.name,
                    e.file.display(),
                    own.pos.line
                );
                d.error(file, site, msg);
                continue;
            }
            if let Some(prev) = e.legacy {
                let msg = format!(
                    "workflow \"{target}\" is triggered by two coordinators: \"{}\" ({}) and \"{}\"",
                    legacies[prev].1.name,
                    legacies[prev].0.display(),
                    c.name
                );
                d.error(file, site, msg);
                continue;
            }
            e.legacy = Some(li);
            e.pw.workflow.coordinator = Some(c.coordinator.clone());
        }
    }
}

fn check_ref(
    d: &mut Diags<'_>,
    file: &Path,
    own_names: &[&str],
    r: &Ref,
    db_names: &BTreeSet<&str>,
    file_names: &BTreeSet<&str>,
    by_name: &HashMap<String, usize>,
) {
    let known = |names: &BTreeSet<&str>| {
        if names.is_empty() {
            "none is defined".to_string()
        } else {
            format!(
                "defined: {}",
                names.iter().copied().collect::<Vec<_>>().join(", ")
            )
        }
    };
    let msg = match r.kind {
        RefKind::DbLink if !db_names.contains(r.name.as_str()) => {
            format!(
                "unknown db-link \"{}\": define it in db_links.xml ({})",
                r.name,
                known(db_names)
            )
        }
        RefKind::FileLink if !file_names.contains(r.name.as_str()) => {
            format!(
                "unknown file-link \"{}\": define it in file_links.xml ({})",
                r.name,
                known(file_names)
            )
        }
        RefKind::SubWorkflow if own_names.contains(&r.name.as_str()) => {
            format!("workflow \"{}\" calls itself as a sub-workflow", r.name)
        }
        RefKind::SubWorkflow if !by_name.contains_key(&r.name) => {
            format!("sub-workflow \"{}\" is not defined", r.name)
        }
        RefKind::Depend if own_names.contains(&r.name.as_str()) => {
            format!("workflow \"{}\" depends on itself", r.name)
        }
        RefKind::Depend if !by_name.contains_key(&r.name) => {
            format!(
                "upstream workflow \"{}\" in <depend-list> is not defined",
                r.name
            )
        }
        _ => return,
    };
    d.error(file, &r.site, msg);
}

/// A `${param:x}` declared nowhere is a run-time parameter: a warning naming it (once per
/// workflow), since whoever runs the workflow must give it; the engine refuses a start that leaves it
/// undefined. Inside a coordinator parameter, a use of a coordinator parameter declared after it is an
/// error (parameters are evaluated in order).
fn check_params(d: &mut Diags<'_>, e: &Entry, legacies: &[(PathBuf, LegacyCoordinator)]) {
    let wf = &e.pw.workflow;
    let declared: BTreeSet<&str> = wf.params.iter().map(|p| p.name.as_str()).collect();
    let coord: Vec<&str> = wf
        .coordinator
        .iter()
        .flat_map(|c| c.params.iter().map(|p| p.name.as_str()))
        .collect();
    let mut warned: BTreeSet<String> = BTreeSet::new();
    let mut check = |d: &mut Diags<'_>, file: &Path, uses: &[ParamUse]| {
        for u in uses {
            let n = u.name.as_str();
            if declared.contains(n) {
                continue;
            }
            match u.coord_param {
                Some(i) if coord.contains(&n) && !coord[..i.min(coord.len())].contains(&n) => {
                    let owner = coord.get(i).copied().unwrap_or("?");
                    let msg = format!(
                        "coordinator parameter \"{owner}\" uses \"{n}\", which is not defined before it"
                    );
                    d.error(file, &u.site, msg);
                }
                _ if !coord.contains(&n) && warned.insert(n.to_string()) => {
                    let msg = format!(
                        "parameter \"{n}\" is declared nowhere: it must be given when the workflow is run"
                    );
                    d.warning(file, &u.site, msg);
                }
                _ => {}
            }
        }
    };
    check(d, &e.file, &e.pw.param_uses);
    if let Some(li) = e.legacy {
        let (file, c) = &legacies[li];
        check(d, file, &c.param_uses);
    }
}

/// The node graph of one workflow.
fn check_graph(d: &mut Diags<'_>, e: &Entry) {
    let wf = &e.pw.workflow;
    let infos = &e.pw.nodes;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in wf.nodes.iter().enumerate() {
        if let Some(&first) = index.get(n.name.as_str()) {
            let msg = format!(
                "duplicate node name \"{}\": also used at line {}",
                n.name, wf.nodes[first].line
            );
            d.error(&e.file, &infos[i].site, msg);
        } else {
            index.insert(&n.name, i);
        }
    }
    let starts: Vec<usize> = (0..wf.nodes.len())
        .filter(|&i| matches!(wf.nodes[i].kind, NodeKind::Start { .. }))
        .collect();
    match starts.as_slice() {
        [] => d.error(
            &e.file,
            &e.pw.root,
            format!("workflow \"{}\" has no <start> node", wf.name),
        ),
        [_] => {}
        [first, rest @ ..] => {
            for &s in rest {
                let msg = format!(
                    "workflow \"{}\" has more than one <start>: \"{}\" (line {}) and \"{}\"",
                    wf.name, wf.nodes[*first].name, wf.nodes[*first].line, wf.nodes[s].name
                );
                d.error(&e.file, &infos[s].site, msg);
            }
        }
    }
    if !wf.nodes.iter().any(|n| matches!(n.kind, NodeKind::End)) {
        d.error(
            &e.file,
            &e.pw.root,
            format!("workflow \"{}\" has no <end> node", wf.name),
        );
    }

    // A transition that is missing (already reported by the parser) or unknown leaves the graph
    // incomplete; then "not reachable" would only repeat that error, so it is not reported.
    let mut incomplete = wf.nodes.iter().any(|n| match &n.kind {
        NodeKind::Start { to } | NodeKind::Join { to } => to.is_empty(),
        NodeKind::Action(a) => a.ok.is_empty(),
        _ => false,
    });
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); wf.nodes.len()];
    let mut incoming = vec![0usize; wf.nodes.len()];
    for (i, info) in infos.iter().enumerate() {
        for edge in &info.edges {
            match index.get(edge.to.as_str()) {
                Some(&t) => {
                    adj[i].push(t);
                    incoming[t] += 1;
                }
                None => {
                    incomplete = true;
                    let msg = if edge.via == "to" {
                        format!("{} goes to unknown node \"{}\"", info.label, edge.to)
                    } else {
                        format!(
                            "{} of {} goes to unknown node \"{}\"",
                            edge.via, info.label, edge.to
                        )
                    };
                    d.error(&e.file, &edge.site, msg);
                }
            }
        }
    }

    if let (Some(&start), false) = (starts.first(), incomplete) {
        let mut seen = vec![false; wf.nodes.len()];
        let mut queue = VecDeque::from([start]);
        seen[start] = true;
        while let Some(n) = queue.pop_front() {
            for &t in &adj[n] {
                if !seen[t] {
                    seen[t] = true;
                    queue.push_back(t);
                }
            }
        }
        for (i, reached) in seen.iter().enumerate() {
            // Only the first of duplicate names is in the graph; extra starts are reported above.
            let is_canonical = index.get(wf.nodes[i].name.as_str()) == Some(&i);
            if !reached && is_canonical && !starts.contains(&i) {
                let msg = format!(
                    "{} is not reachable from start \"{}\"",
                    infos[i].label, wf.nodes[start].name
                );
                d.error(&e.file, &infos[i].site, msg);
            }
        }
    }

    for cycle in cycles(&adj) {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| wf.nodes[i].name.as_str())
            .collect();
        let msg = format!(
            "cycle in workflow \"{}\": {}: a workflow may not loop; to try an action again use retry-times and interval",
            wf.name,
            names.join(" -> ")
        );
        d.error(&e.file, &infos[cycle[0]].site, msg);
    }

    for (i, n) in wf.nodes.iter().enumerate() {
        match &n.kind {
            NodeKind::Fork { paths } => {
                if paths.len() < 2 {
                    let msg = format!("{} needs at least two <path> elements", infos[i].label);
                    d.error(&e.file, &infos[i].site, msg);
                }
                for (j, p) in paths.iter().enumerate() {
                    if paths[..j].contains(p) {
                        let site = &infos[i].edges[j].site;
                        d.error(
                            &e.file,
                            site,
                            format!("{} has two paths to \"{p}\"", infos[i].label),
                        );
                    }
                }
            }
            NodeKind::Join { .. } if incoming[i] < 2 && index.get(n.name.as_str()) == Some(&i) => {
                let msg = format!(
                    "{} has {} incoming transition(s): a join waits for the branches of a fork, so it needs at least two",
                    infos[i].label, incoming[i]
                );
                d.error(&e.file, &infos[i].site, msg);
            }
            _ => {}
        }
    }
}

/// Dependency and sub-workflow call graphs between workflows must be acyclic.
fn check_workflow_graphs(
    d: &mut Diags<'_>,
    entries: &[Entry],
    legacies: &[(PathBuf, LegacyCoordinator)],
    by_name: &HashMap<String, usize>,
) {
    // (upstream index, file, site) per workflow, for both edge kinds.
    let mut depends: Vec<Vec<(usize, &Path, &Site)>> = vec![Vec::new(); entries.len()];
    let mut calls: Vec<Vec<(usize, &Path, &Site)>> = vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if by_name.get(&e.pw.workflow.name) != Some(&i) {
            continue;
        }
        let legacy_refs = e
            .legacy
            .map(|li| (legacies[li].0.as_path(), &legacies[li].1.refs));
        let own = std::iter::once((e.file.as_path(), &e.pw.refs));
        for (file, refs) in own.chain(legacy_refs) {
            for r in refs {
                let Some(&t) = by_name.get(&r.name) else {
                    continue;
                };
                match r.kind {
                    RefKind::Depend => depends[i].push((t, file, &r.site)),
                    RefKind::SubWorkflow => calls[i].push((t, file, &r.site)),
                    _ => {}
                }
            }
        }
    }
    for (edges, what) in [
        (&depends, "dependency cycle between workflows"),
        (&calls, "sub-workflow call cycle"),
    ] {
        let adj: Vec<Vec<usize>> = edges
            .iter()
            .map(|es| es.iter().map(|(t, _, _)| *t).collect())
            .collect();
        for cycle in cycles(&adj) {
            // Self-references are reported by `check_ref`.
            if cycle.len() == 1 {
                continue;
            }
            let names: Vec<&str> = cycle
                .iter()
                .chain(cycle.first())
                .map(|&i| entries[i].pw.workflow.name.as_str())
                .collect();
            let next = cycle[1];
            let (_, file, site) = edges[cycle[0]]
                .iter()
                .find(|(t, _, _)| *t == next)
                .expect("cycle edge exists");
            d.error(file, site, format!("{what}: {}", names.join(" -> ")));
        }
    }
}

/// One cycle per strongly connected component that has one (a self-loop counts), each starting at
/// the component's first node in file order and as short as possible through it.
fn cycles(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for comp in strongly_connected(adj) {
        let s = *comp.iter().min().expect("components are not empty");
        if comp.len() == 1 && !adj[s].contains(&s) {
            continue;
        }
        let in_comp: BTreeSet<usize> = comp.iter().copied().collect();
        // Shortest way back to `s` inside the component.
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([s]);
        let mut last = None;
        'bfs: while let Some(n) = queue.pop_front() {
            for &t in &adj[n] {
                if t == s {
                    last = Some(n);
                    break 'bfs;
                }
                if in_comp.contains(&t) && !parent.contains_key(&t) && t != s {
                    parent.insert(t, n);
                    queue.push_back(t);
                }
            }
        }
        let mut path = Vec::new();
        let mut n = last.expect("a strongly connected component leads back to its nodes");
        while n != s {
            path.push(n);
            n = parent[&n];
        }
        path.push(s);
        path.reverse();
        out.push(path);
    }
    out.sort();
    out
}

/// Tarjan's algorithm, iterative so that a long chain of nodes cannot overflow the stack.
fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut comps = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = work.last_mut() {
            let v = top.0;
            if top.1 < adj[v].len() {
                let w = adj[v][top.1];
                top.1 += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comps.push(comp);
            }
        }
    }
    comps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_per_component_and_start_at_the_first_node() {
        type Graph<'a> = &'a [&'a [usize]];
        let cases: &[(Graph, Graph)] = &[
            (&[&[1], &[2], &[]], &[]),
            (&[&[1], &[0]], &[&[0, 1]]),
            (&[&[0]], &[&[0]]),
            // 0 → 1 → 2 → 3 → 1 and 2 → 1: the shortest loop through 1 is 1 → 2 → 1.
            (&[&[1], &[2], &[3, 1], &[1]], &[&[1, 2]]),
            // Two separate loops.
            (&[&[1], &[0, 2], &[3], &[2]], &[&[0, 1], &[2, 3]]),
        ];
        for (adj, want) in cases {
            let adj: Vec<Vec<usize>> = adj.iter().map(|a| a.to_vec()).collect();
            let want: Vec<Vec<usize>> = want.iter().map(|a| a.to_vec()).collect();
            assert_eq!(cycles(&adj), want, "{adj:?}");
        }
    }

    #[test]
    fn long_chains_do_not_overflow() {
        let n = 100_000;
        let adj: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![0] })
            .collect();
        let found = cycles(&adj);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), n);
    }
}
