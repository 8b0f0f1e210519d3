//! The graphs: each workflow's nodes (one start, reachability, no cycles, fork/join shape) and the
//! graphs between workflows (dependencies, sub-workflow calls), which must be acyclic.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::super::model::NodeKind;
use super::super::parser::{LegacyCoordinator, RefKind, Site};
use super::{Diags, Entry};

/// The node graph of one workflow.
pub(super) fn check_graph(d: &mut Diags<'_>, e: &Entry) {
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
pub(super) fn check_workflow_graphs(
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
