//! Set-level checks: what needs more than one element or more than one file.
//!
//! Owns: attaching legacy coordinators, link and workflow references, parameter definitions, the
//! node graph of each workflow (one start, known targets, reachability, no cycles, fork/join shape)
//! and the graphs between workflows (dependencies, sub-workflow calls). Every problem is reported;
//! nothing stops at the first. A node graph with no cycle whose targets all exist ends every path in
//! an `<end>` or `<kill>` (the only nodes without successors), so that rule needs no check of its own.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::calendar::Calendar;
use super::model::{DbLink, FileLink, NodeKind, Pool};
use super::parser::implied_local;
use super::parser::{LegacyCoordinator, ParamUse, Parsed, ParsedWorkflow, Ref, RefKind, Site};
use super::{Diagnostic, Severity};
use graph::{check_graph, check_workflow_graphs};

mod graph;

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
