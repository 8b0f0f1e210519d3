//! DAG advance: given a workflow definition and the current state of every node of an instance, what
//! changes when a node finishes (or the instance starts or is recovered).
//!
//! Pure: no I/O, so every rule is unit-tested here. The engine applies the resulting [`Plan`] with one
//! guarded UPDATE per change, inside the transaction that holds the instance's row lock, so two
//! branches reaching a join serialise and the join fires exactly once.
//!
//! Rules:
//! - control nodes (start, fork, join, end, kill) and `is-ignore` actions complete at once;
//! - an action reached from `waiting` becomes `ready`;
//! - a join fires when every predecessor has either arrived at it or can no longer arrive (it is
//!   finished and took another edge, or it is waiting and no active node can reach it);
//! - end, kill, or a failure without an `<error>` edge ends the instance: active nodes are killed,
//!   waiting ones skipped;
//! - if nothing is active any more and the instance has not ended, it fails (nothing can run).

use std::collections::{BTreeMap, HashSet, VecDeque};

use super::state::{InstanceStatus, TaskStatus};
use crate::definition::{NodeKind, Workflow};

/// One change to a node's row: `from` is what the guarded UPDATE expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUpdate {
    pub node: String,
    pub from: Vec<TaskStatus>,
    pub to: TaskStatus,
    pub note: Option<String>,
}

/// How the instance ends, when it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceEnd {
    pub status: InstanceStatus,
    pub reason: String,
    /// The kill node that ended the instance, with its message: it sends its own alert.
    pub kill_node: Option<(String, String)>,
}

/// What to write after an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub updates: Vec<NodeUpdate>,
    pub end: Option<InstanceEnd>,
}

impl Plan {
    /// Nodes this plan makes ready, for waking workers.
    pub fn made_ready(&self) -> impl Iterator<Item = &str> {
        self.updates
            .iter()
            .filter(|u| u.to == TaskStatus::Ready)
            .map(|u| u.node.as_str())
    }
}

/// The reason recorded on tasks stopped because their instance ended.
pub const INSTANCE_ENDED: &str = "instance ended";

struct Advance<'a> {
    def: &'a Workflow,
    states: BTreeMap<&'a str, TaskStatus>,
    plan: Plan,
}

impl<'a> Advance<'a> {
    fn new(def: &'a Workflow, states: &BTreeMap<String, TaskStatus>) -> Self {
        let states = def
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    states.get(&n.name).copied().unwrap_or(TaskStatus::Waiting),
                )
            })
            .collect();
        Advance {
            def,
            states,
            plan: Plan::default(),
        }
    }

    fn state(&self, node: &str) -> TaskStatus {
        self.states
            .get(node)
            .copied()
            .unwrap_or(TaskStatus::Waiting)
    }

    fn mark(&mut self, node: &'a str, to: TaskStatus, note: Option<String>) {
        let from = self.state(node);
        self.states.insert(node, to);
        self.plan.updates.push(NodeUpdate {
            node: node.to_string(),
            from: vec![from],
            to,
            note,
        });
    }

    /// The edges a finished node took.
    fn taken_edges(&self, node: &str) -> Vec<&'a str> {
        let Some(n) = self.def.node(node) else {
            return vec![];
        };
        match (&n.kind, self.state(node)) {
            (NodeKind::Action(a), TaskStatus::Succeeded) => vec![a.ok.as_str()],
            (NodeKind::Action(a), TaskStatus::Failed | TaskStatus::Killed) => {
                a.error.as_deref().into_iter().collect()
            }
            (kind, TaskStatus::Succeeded) => kind.successors(),
            _ => vec![],
        }
    }

    fn is_active(status: TaskStatus) -> bool {
        matches!(status, TaskStatus::Ready | TaskStatus::Running)
    }

    /// Whether `pred` may still arrive at `join`: some active node reaches it without passing the join.
    fn may_still_arrive(&self, pred: &str, join: &str) -> bool {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<&str> = self
            .states
            .iter()
            .filter(|(_, s)| Self::is_active(**s))
            .map(|(n, _)| *n)
            .collect();
        while let Some(n) = queue.pop_front() {
            if n == pred {
                return true;
            }
            if n == join || !seen.insert(n) {
                continue;
            }
            if let Some(node) = self.def.node(n) {
                queue.extend(node.kind.successors());
            }
        }
        false
    }

    fn join_ready(&self, join: &str) -> bool {
        self.def.predecessors(join).into_iter().all(|p| {
            let status = self.state(p);
            if status.is_terminal() {
                // arrived, or finished elsewhere: either way it will not arrive later
                true
            } else if Self::is_active(status) {
                false
            } else {
                !self.may_still_arrive(p, join)
            }
        }) && self
            .def
            .predecessors(join)
            .into_iter()
            .any(|p| self.taken_edges(p).contains(&join))
    }

    fn arrive(&mut self, target: &'a str) {
        let mut queue = VecDeque::from([target]);
        while let Some(name) = queue.pop_front() {
            if self.plan.end.is_some() {
                return;
            }
            let Some(node) = self.def.node(name) else {
                continue;
            };
            let status = self.state(name);
            match &node.kind {
                NodeKind::Start { to } => {
                    if status == TaskStatus::Waiting {
                        self.mark(name, TaskStatus::Succeeded, None);
                    }
                    queue.push_back(to);
                }
                NodeKind::Fork { paths } => {
                    if status == TaskStatus::Waiting {
                        self.mark(name, TaskStatus::Succeeded, None);
                        queue.extend(paths.iter().map(String::as_str));
                    }
                }
                NodeKind::Join { to } => {
                    if status == TaskStatus::Waiting && self.join_ready(name) {
                        self.mark(name, TaskStatus::Succeeded, None);
                        queue.push_back(to);
                    }
                }
                NodeKind::End => {
                    self.mark(name, TaskStatus::Succeeded, None);
                    self.finish(
                        InstanceStatus::Succeeded,
                        format!("reached end node `{name}`"),
                    );
                }
                NodeKind::Kill { message } => {
                    self.mark(name, TaskStatus::Succeeded, None);
                    let text = message.as_str().trim();
                    let reason = if text.is_empty() {
                        format!("reached kill node `{name}`")
                    } else {
                        format!("reached kill node `{name}`: {text}")
                    };
                    self.finish(InstanceStatus::Killed, reason);
                    if let Some(end) = &mut self.plan.end {
                        end.kill_node = Some((name.to_string(), text.to_string()));
                    }
                }
                NodeKind::Action(action) => match status {
                    TaskStatus::Waiting if action.is_ignore => {
                        self.mark(
                            name,
                            TaskStatus::Succeeded,
                            Some("ignored (is-ignore)".into()),
                        );
                        queue.push_back(&action.ok);
                    }
                    TaskStatus::Waiting => self.mark(name, TaskStatus::Ready, None),
                    // reached again through a second path: it already ran, pass its result on
                    TaskStatus::Succeeded => queue.push_back(&action.ok),
                    _ => {}
                },
            }
        }
    }

    fn finish(&mut self, status: InstanceStatus, reason: String) {
        let names: Vec<&'a str> = self.states.keys().copied().collect();
        for name in names {
            match self.state(name) {
                TaskStatus::Ready | TaskStatus::Running => {
                    let from = vec![TaskStatus::Ready, TaskStatus::Running];
                    self.states.insert(name, TaskStatus::Killed);
                    self.plan.updates.push(NodeUpdate {
                        node: name.to_string(),
                        from,
                        to: TaskStatus::Killed,
                        note: Some(INSTANCE_ENDED.to_string()),
                    });
                }
                TaskStatus::Waiting => self.mark(name, TaskStatus::Skipped, None),
                _ => {}
            }
        }
        self.plan.end = Some(InstanceEnd {
            status,
            reason,
            kill_node: None,
        });
    }

    /// The safety net: an instance with nothing active that has not ended can never progress.
    fn check_stuck(&mut self) {
        if self.plan.end.is_none() && !self.states.values().any(|s| Self::is_active(*s)) {
            self.finish(
                InstanceStatus::Failed,
                "no node can run any more (a join can never fire)".into(),
            );
        }
    }

    fn into_plan(mut self) -> Plan {
        self.check_stuck();
        self.plan
    }
}

/// Starts an instance: every node is `waiting` (or, when recovering, `succeeded` nodes are kept and
/// passed through).
pub fn start(def: &Workflow, states: &BTreeMap<String, TaskStatus>) -> Plan {
    let mut adv = Advance::new(def, states);
    if let Some(start) = def.start() {
        adv.arrive(&start.name);
    }
    adv.into_plan()
}

/// After `node` reached its final status (already in `states`): follow its edge or end the instance.
pub fn after_node(def: &Workflow, states: &BTreeMap<String, TaskStatus>, node: &str) -> Plan {
    let mut adv = Advance::new(def, states);
    let Some(n) = def.node(node) else {
        return adv.into_plan();
    };
    let NodeKind::Action(action) = &n.kind else {
        return adv.into_plan();
    };
    let name = n.name.as_str();
    match adv.state(name) {
        TaskStatus::Succeeded => adv.arrive(&action.ok),
        status @ (TaskStatus::Failed | TaskStatus::Killed) => match &action.error {
            Some(error) => adv.arrive(error),
            None => {
                let (end, verb) = if status == TaskStatus::Killed {
                    (InstanceStatus::Killed, "was killed")
                } else {
                    (InstanceStatus::Failed, "failed")
                };
                adv.finish(end, format!("node `{name}` {verb}"));
            }
        },
        // still ready/running (a retry): nothing moves
        _ => {}
    }
    adv.into_plan()
}

/// Ends an instance from outside (operator kill): active nodes killed, waiting ones skipped.
pub fn end_instance(
    def: &Workflow,
    states: &BTreeMap<String, TaskStatus>,
    status: InstanceStatus,
    reason: String,
) -> Plan {
    let mut adv = Advance::new(def, states);
    adv.finish(status, reason);
    adv.plan
}

/// The states to reset before a rerun: all nodes `waiting`, except succeeded actions when recovering.
pub fn rerun_states(
    def: &Workflow,
    states: &BTreeMap<String, TaskStatus>,
    recover: bool,
) -> BTreeMap<String, TaskStatus> {
    def.nodes
        .iter()
        .map(|n| {
            let keep = recover
                && matches!(n.kind, NodeKind::Action(_))
                && states.get(&n.name) == Some(&TaskStatus::Succeeded);
            let status = if keep {
                TaskStatus::Succeeded
            } else {
                TaskStatus::Waiting
            };
            (n.name.clone(), status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::template::Template;
    use crate::definition::{Action, ActionKind, Node};

    fn action(name: &str, ok: &str, error: Option<&str>, ignore: bool) -> Node {
        Node {
            name: name.into(),
            line: 1,
            kind: NodeKind::Action(Box::new(Action {
                host: None,
                retry_times: 0,
                lost_times: None,
                interval_secs: 0,
                timeout_secs: None,
                is_ignore: ignore,
                description: String::new(),
                ok: ok.into(),
                error: error.map(Into::into),
                kind: ActionKind::Shell {
                    command: Template::parse("true").unwrap(),
                },
                pool: None,
                pool_slots: 1,
                priority: None,
            })),
        }
    }

    fn node(name: &str, kind: NodeKind) -> Node {
        Node {
            name: name.into(),
            line: 1,
            kind,
        }
    }

    fn wf(nodes: Vec<Node>) -> Workflow {
        Workflow {
            name: "w".into(),
            creator: String::new(),
            description: String::new(),
            dir: "/".into(),
            mail_level: vec![],
            mail_receivers: vec![],
            alert_channels: vec![],
            instance_limit: 1,
            retention_days: None,
            lost_times: None,
            priority: 0,
            coordinator: None,
            params: vec![],
            nodes,
        }
    }

    fn fork_join() -> Workflow {
        wf(vec![
            node("start", NodeKind::Start { to: "fork".into() }),
            node(
                "fork",
                NodeKind::Fork {
                    paths: vec!["a".into(), "b".into()],
                },
            ),
            action("a", "join", None, false),
            action("b", "join", None, false),
            node("join", NodeKind::Join { to: "c".into() }),
            action("c", "end", Some("kill"), false),
            node("end", NodeKind::End),
            node(
                "kill",
                NodeKind::Kill {
                    message: Template::parse("boom").unwrap(),
                },
            ),
        ])
    }

    fn apply(states: &mut BTreeMap<String, TaskStatus>, plan: &Plan) {
        for u in &plan.updates {
            assert!(
                u.from.contains(&states[&u.node]),
                "{u:?} vs {:?}",
                states[&u.node]
            );
            states.insert(u.node.clone(), u.to);
        }
    }

    fn all_waiting(def: &Workflow) -> BTreeMap<String, TaskStatus> {
        def.nodes
            .iter()
            .map(|n| (n.name.clone(), TaskStatus::Waiting))
            .collect()
    }

    fn finish(
        def: &Workflow,
        states: &mut BTreeMap<String, TaskStatus>,
        node: &str,
        to: TaskStatus,
    ) -> Plan {
        states.insert(node.into(), to);
        let plan = after_node(def, states, node);
        apply(states, &plan);
        plan
    }

    #[test]
    fn start_makes_both_fork_branches_ready() {
        let def = fork_join();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        assert_eq!(plan.made_ready().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(states["start"], TaskStatus::Succeeded);
        assert_eq!(states["fork"], TaskStatus::Succeeded);
        assert!(plan.end.is_none());
    }

    #[test]
    fn join_fires_once_after_the_last_branch() {
        let def = fork_join();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        let first = finish(&def, &mut states, "a", TaskStatus::Succeeded);
        assert!(first.updates.is_empty(), "join must wait for b: {first:?}");
        let second = finish(&def, &mut states, "b", TaskStatus::Succeeded);
        assert_eq!(second.made_ready().collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(states["join"], TaskStatus::Succeeded);
        let end = finish(&def, &mut states, "c", TaskStatus::Succeeded);
        assert_eq!(end.end.unwrap().status, InstanceStatus::Succeeded);
        assert_eq!(states["kill"], TaskStatus::Skipped);
    }

    #[test]
    fn failure_without_error_edge_fails_the_instance_and_kills_the_rest() {
        let def = fork_join();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        states.insert("b".into(), TaskStatus::Running);
        let plan = finish(&def, &mut states, "a", TaskStatus::Failed);
        let end = plan.end.unwrap();
        assert_eq!(end.status, InstanceStatus::Failed);
        assert!(end.reason.contains("`a` failed"), "{}", end.reason);
        assert_eq!(states["b"], TaskStatus::Killed);
        assert_eq!(states["c"], TaskStatus::Skipped);
    }

    #[test]
    fn error_edge_to_kill_node_kills_the_instance_with_its_message() {
        let def = fork_join();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        finish(&def, &mut states, "a", TaskStatus::Succeeded);
        finish(&def, &mut states, "b", TaskStatus::Succeeded);
        let plan = finish(&def, &mut states, "c", TaskStatus::Failed);
        let end = plan.end.unwrap();
        assert_eq!(end.status, InstanceStatus::Killed);
        assert!(end.reason.contains("boom"));
        assert_eq!(states["end"], TaskStatus::Skipped);
    }

    #[test]
    fn ignored_action_passes_through() {
        let def = wf(vec![
            node("start", NodeKind::Start { to: "a".into() }),
            action("a", "b", None, true),
            action("b", "end", None, false),
            node("end", NodeKind::End),
        ]);
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        assert_eq!(states["a"], TaskStatus::Succeeded);
        assert_eq!(plan.made_ready().collect::<Vec<_>>(), vec!["b"]);
    }

    /// A fork of `a` and `b` into a join, where `a`'s error path detours through `x`.
    fn fork_with_detour() -> Workflow {
        wf(vec![
            node("start", NodeKind::Start { to: "fork".into() }),
            node(
                "fork",
                NodeKind::Fork {
                    paths: vec!["a".into(), "b".into()],
                },
            ),
            action("a", "join", Some("x"), false),
            action("x", "join", None, false),
            action("b", "join", None, false),
            node("join", NodeKind::Join { to: "end".into() }),
            node("end", NodeKind::End),
        ])
    }

    #[test]
    fn join_after_error_path_waits_for_the_detour() {
        // a fails and detours through x into the join; b goes straight in
        let def = fork_with_detour();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        finish(&def, &mut states, "b", TaskStatus::Succeeded);
        let plan = finish(&def, &mut states, "a", TaskStatus::Failed);
        assert_eq!(plan.made_ready().collect::<Vec<_>>(), vec!["x"]);
        assert_eq!(states["join"], TaskStatus::Waiting);
        let plan = finish(&def, &mut states, "x", TaskStatus::Succeeded);
        assert_eq!(plan.end.unwrap().status, InstanceStatus::Succeeded);
    }

    #[test]
    fn join_does_not_wait_for_an_unreached_detour() {
        let def = fork_with_detour();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        finish(&def, &mut states, "a", TaskStatus::Succeeded);
        let plan = finish(&def, &mut states, "b", TaskStatus::Succeeded);
        assert_eq!(plan.end.unwrap().status, InstanceStatus::Succeeded);
        assert_eq!(states["x"], TaskStatus::Skipped);
    }

    #[test]
    fn recover_keeps_succeeded_actions_and_reruns_the_rest() {
        let def = fork_join();
        let mut old = all_waiting(&def);
        let plan = start(&def, &old);
        apply(&mut old, &plan);
        finish(&def, &mut old, "a", TaskStatus::Succeeded);
        finish(&def, &mut old, "b", TaskStatus::Failed);
        let mut states = rerun_states(&def, &old, true);
        assert_eq!(states["a"], TaskStatus::Succeeded);
        assert_eq!(states["fork"], TaskStatus::Waiting);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        assert_eq!(plan.made_ready().collect::<Vec<_>>(), vec!["b"]);
        let full = rerun_states(&def, &old, false);
        assert!(full.values().all(|s| *s == TaskStatus::Waiting));
    }

    #[test]
    fn retrying_task_moves_nothing() {
        let def = fork_join();
        let mut states = all_waiting(&def);
        let plan = start(&def, &states);
        apply(&mut states, &plan);
        states.insert("a".into(), TaskStatus::Ready);
        let plan = after_node(&def, &states, "a");
        assert_eq!(plan, Plan::default());
    }
}
