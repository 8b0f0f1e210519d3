//! A workflow's node graph as the API shows it, and a layered layout of it for the UI's SVG.
//!
//! Layout (Sugiyama, simplified): each node's layer is its longest distance from the start node
//! (the validator guarantees no cycles), then nodes within a layer are ordered by the mean position
//! of their predecessors, a few sweeps each way, which untangles forks and joins. Pure and
//! deterministic, so the same workflow always draws the same.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use utoipa::ToSchema;

use crate::definition::{NodeKind, Workflow};

/// One node and its outgoing edges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct NodeView {
    pub name: String,
    /// `start`, `end`, `kill`, `fork`, `join`, or an action kind (`shell`, `sql`, ...).
    pub kind: String,
    /// Line of the node's element in its file.
    pub line: u32,
    pub description: String,
    pub edges: Vec<EdgeView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct EdgeView {
    pub to: String,
    /// `ok` or `error` for an action's transitions, `next` for the others.
    pub kind: String,
}

pub(crate) fn nodes(def: &Workflow) -> Vec<NodeView> {
    def.nodes
        .iter()
        .map(|n| {
            let (edges, description) = match &n.kind {
                NodeKind::Action(a) => {
                    let mut e = vec![EdgeView {
                        to: a.ok.clone(),
                        kind: "ok".into(),
                    }];
                    if let Some(err) = &a.error {
                        e.push(EdgeView {
                            to: err.clone(),
                            kind: "error".into(),
                        });
                    }
                    (e, a.description.clone())
                }
                other => (
                    other
                        .successors()
                        .into_iter()
                        .map(|s| EdgeView {
                            to: s.to_string(),
                            kind: "next".into(),
                        })
                        .collect(),
                    String::new(),
                ),
            };
            NodeView {
                name: n.name.clone(),
                kind: n.kind.kind_name().to_string(),
                line: n.line,
                description,
                edges,
            }
        })
        .collect()
}

/// Where each node goes: `layer` is the column, `slot` the row within it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Layout {
    pub pos: BTreeMap<String, (usize, usize)>,
    pub layers: usize,
    /// The most nodes any layer holds.
    pub breadth: usize,
}

pub(crate) fn layout(nodes: &[NodeView]) -> Layout {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let succ: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.edges
                .iter()
                .filter_map(|e| index.get(e.to.as_str()).copied())
                .collect()
        })
        .collect();
    let mut indeg = vec![0usize; nodes.len()];
    for s in &succ {
        for &t in s {
            indeg[t] += 1;
        }
    }
    // longest path by Kahn's order; nodes on a cycle (never valid) keep layer 0
    let mut layer = vec![0usize; nodes.len()];
    let mut queue: VecDeque<usize> = (0..nodes.len()).filter(|&i| indeg[i] == 0).collect();
    let mut left = indeg.clone();
    while let Some(i) = queue.pop_front() {
        for &t in &succ[i] {
            layer[t] = layer[t].max(layer[i] + 1);
            left[t] -= 1;
            if left[t] == 0 {
                queue.push_back(t);
            }
        }
    }
    let layers = layer.iter().max().map_or(0, |m| m + 1);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (i, &l) in layer.iter().enumerate() {
        columns[l].push(i);
    }
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, s) in succ.iter().enumerate() {
        for &t in s {
            pred[t].push(i);
        }
    }
    let mut slot = vec![0f64; nodes.len()];
    let renumber = |columns: &Vec<Vec<usize>>, slot: &mut Vec<f64>| {
        for col in columns {
            for (k, &i) in col.iter().enumerate() {
                slot[i] = k as f64;
            }
        }
    };
    renumber(&columns, &mut slot);
    for sweep in 0..4 {
        let down = sweep % 2 == 0;
        let order: Vec<usize> = if down {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in order {
            let mut keyed: Vec<(f64, usize)> = columns[l]
                .iter()
                .map(|&i| {
                    let near = if down { &pred[i] } else { &succ[i] };
                    let key = if near.is_empty() {
                        slot[i]
                    } else {
                        near.iter().map(|&j| slot[j]).sum::<f64>() / near.len() as f64
                    };
                    (key, i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            columns[l] = keyed.into_iter().map(|(_, i)| i).collect();
            for (k, &i) in columns[l].iter().enumerate() {
                slot[i] = k as f64;
            }
        }
    }
    let breadth = columns.iter().map(Vec::len).max().unwrap_or(0);
    let mut pos = BTreeMap::new();
    for (l, col) in columns.iter().enumerate() {
        for (k, &i) in col.iter().enumerate() {
            pos.insert(nodes[i].name.clone(), (l, k));
        }
    }
    Layout {
        pos,
        layers,
        breadth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, to: &[&str]) -> NodeView {
        NodeView {
            name: name.into(),
            kind: "shell".into(),
            line: 1,
            description: String::new(),
            edges: to
                .iter()
                .map(|t| EdgeView {
                    to: t.to_string(),
                    kind: "next".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn fork_join_gets_longest_path_layers() {
        let g = vec![
            node("start", &["fork"]),
            node("fork", &["a", "b"]),
            node("a", &["a2"]),
            node("a2", &["join"]),
            node("b", &["join"]),
            node("join", &["end"]),
            node("end", &[]),
        ];
        let l = layout(&g);
        assert_eq!(l.layers, 6);
        assert_eq!(l.breadth, 2);
        assert_eq!(l.pos["join"].0, 4, "the join waits for the longer branch");
        assert_eq!(l.pos["b"].0, 2);
        assert_ne!(l.pos["a"], l.pos["b"]);
    }

    #[test]
    fn crossing_edges_are_untangled() {
        // s -> x, y; x -> q; y -> p; p and q listed in the crossing order
        let g = vec![
            node("s", &["x", "y"]),
            node("p", &[]),
            node("q", &[]),
            node("x", &["q"]),
            node("y", &["p"]),
        ];
        let l = layout(&g);
        assert_eq!(l.pos["x"].1 < l.pos["y"].1, l.pos["q"].1 < l.pos["p"].1);
    }
}
