//! Commands that change things: sync, trigger, run, enable/disable, kill, rerun, retry.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    connect, os_actor, params_map, print_json, InstanceCommand, PoolCommand, TaskCommand,
    WorkflowCommand,
};
use crate::config::Config;
use crate::engine::{CreateInstance, Created, Engine};
use crate::error::{Error, Result};
use crate::state::{InstanceId, InstanceStatus, TaskId, TriggerKind};
use crate::sync::{self, SyncOptions};

pub(super) async fn sync(
    cfg: &Config,
    dir: PathBuf,
    dry_run: bool,
    prune: bool,
    overwrite_rollbacks: bool,
    json: bool,
) -> Result<i32> {
    // validate before touching the database, so bad files never need one
    let set = sync::load(vec![dir]).await?;
    for w in &set.warnings {
        eprintln!("{w}");
    }
    let store = connect(cfg).await?;
    let opts = SyncOptions {
        dry_run,
        prune,
        prune_under: None,
        actor: os_actor(),
        default_timezone: cfg.timezone,
        alert_channels: Some(cfg.channels.iter().map(|c| c.route.name.clone()).collect()),
        overwrite_rollbacks,
    };
    let report = sync::sync_set(&store, &set, &opts).await?;
    if json {
        print_json(&report);
    } else {
        println!(
            "{report}{}",
            if dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
        for line in &report.rollbacks_kept {
            println!("kept rollback: {line}");
        }
        for line in &report.rollbacks_undone {
            println!("UNDID rollback: {line}");
        }
    }
    Ok(0)
}

pub(super) async fn workflow(cfg: &Config, cmd: WorkflowCommand) -> Result<i32> {
    match cmd {
        WorkflowCommand::List { json } => super::inspect::workflow_list(cfg, json).await,
        WorkflowCommand::Info { name, json } => {
            super::inspect::workflow_info(cfg, &name, json).await
        }
        WorkflowCommand::History { name, json } => super::versions::history(cfg, &name, json).await,
        WorkflowCommand::Diff { name, from, to } => {
            super::versions::diff(cfg, &name, from, to).await
        }
        WorkflowCommand::Rollback { name, to, json } => {
            super::versions::rollback(cfg, &name, to, json).await
        }
        WorkflowCommand::Show { name, version } => super::versions::show(cfg, &name, version).await,
        WorkflowCommand::Trigger {
            name,
            params,
            blood,
            wait,
            json,
        } => {
            let trigger = if blood {
                TriggerKind::Blood
            } else {
                TriggerKind::Trigger
            };
            let how = Start {
                trigger,
                coordinator_params: true,
                version: None,
            };
            start(cfg, name, how, params, wait, json).await
        }
        WorkflowCommand::Run {
            name,
            version,
            params,
            wait,
            json,
        } => {
            let how = Start {
                trigger: TriggerKind::Run,
                coordinator_params: false,
                version,
            };
            start(cfg, name, how, params, wait, json).await
        }
        WorkflowCommand::Backfill(args) => super::backfill::create(cfg, args).await,
        WorkflowCommand::Enable { name } => set_enabled(cfg, &name, true).await,
        WorkflowCommand::Disable { name } => set_enabled(cfg, &name, false).await,
    }
}

/// How `trigger` and `run` start an instance.
struct Start {
    trigger: TriggerKind,
    coordinator_params: bool,
    /// An old stored version to run (`run --version`)
    version: Option<i64>,
}

async fn start(
    cfg: &Config,
    name: String,
    how: Start,
    params: Vec<(String, String)>,
    wait: bool,
    json: bool,
) -> Result<i32> {
    let engine = Engine::for_config(connect(cfg).await?, cfg);
    let req = CreateInstance {
        workflow: name,
        trigger: how.trigger,
        scheduled_for: None,
        params: params_map(params),
        coordinator_params: how.coordinator_params,
        parent: None,
        actor: os_actor(),
    };
    let Created { id, status } = engine.create_instance_at(&req, how.version).await?;
    let id = id.ok_or_else(|| Error::Conflict("the instance slot was taken".into()))?;
    if json && !wait {
        print_json(&serde_json::json!({ "instance_id": id, "status": status }));
    } else if !json {
        println!("{id}");
    }
    if !wait {
        return Ok(0);
    }
    let end = wait_for_end(&engine, id).await?;
    if json {
        print_json(&serde_json::json!({ "instance_id": id, "status": end }));
    } else {
        eprintln!("instance {id} {end}");
    }
    Ok(if end == InstanceStatus::Succeeded {
        0
    } else {
        1
    })
}

/// Polls until the instance is terminal: ten reads a second of one row, so a script that waits on
/// a run (and `bench/transfer.sh`, which times one) learns of its end within 0.1 s.
pub(super) async fn wait_for_end(engine: &Engine, id: InstanceId) -> Result<InstanceStatus> {
    loop {
        let inst = engine
            .store
            .instance_get(id)
            .await?
            .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
        if inst.status.is_terminal() {
            return Ok(inst.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_enabled(cfg: &Config, name: &str, enabled: bool) -> Result<i32> {
    let engine = Engine::for_config(connect(cfg).await?, cfg);
    let cas = engine
        .set_workflow_enabled(name, enabled, &os_actor())
        .await?;
    let word = if enabled { "enabled" } else { "disabled" };
    println!(
        "workflow {name} {word}{}",
        if cas.applied() {
            ""
        } else {
            " (it already was)"
        }
    );
    Ok(0)
}

pub(super) async fn instance(cfg: &Config, cmd: InstanceCommand) -> Result<i32> {
    match cmd {
        InstanceCommand::List {
            workflow,
            status,
            since,
            limit,
            json,
        } => super::inspect::instance_list(cfg, workflow, status, since, limit, json).await,
        InstanceCommand::Info { id, json } => {
            super::inspect::instance_info(cfg, InstanceId(id), json).await
        }
        InstanceCommand::Kill { id } => {
            let engine = Engine::for_config(connect(cfg).await?, cfg);
            engine.kill_instance(InstanceId(id), &os_actor()).await?;
            println!("instance {id} killed");
            Ok(0)
        }
        InstanceCommand::Rerun { id, recover } => {
            let engine = Engine::for_config(connect(cfg).await?, cfg);
            let status = engine
                .rerun_instance(InstanceId(id), recover, &os_actor())
                .await?;
            println!("instance {id} {status}");
            Ok(0)
        }
    }
}

pub(super) async fn task(cfg: &Config, cmd: TaskCommand) -> Result<i32> {
    let engine = Engine::for_config(connect(cfg).await?, cfg);
    match cmd {
        TaskCommand::Retry { id } => {
            let status = engine.retry_task(TaskId(id), &os_actor()).await?;
            println!("task {id} will run again; its instance is {status}");
        }
        TaskCommand::Kill { id } => match engine.kill_task(TaskId(id), &os_actor()).await? {
            crate::state::TaskStatus::Running => {
                println!("task {id}: kill requested; its worker stops it within a heartbeat")
            }
            status => println!("task {id} {status}"),
        },
    }
    Ok(0)
}

pub(super) async fn pool(cfg: &Config, cmd: PoolCommand) -> Result<i32> {
    match cmd {
        PoolCommand::List { json } => super::inspect::pool_list(cfg, json).await,
        PoolCommand::Set { name, slots } => {
            let engine = Engine::for_config(connect(cfg).await?, cfg);
            let change = engine.pool_set(&name, slots, &os_actor()).await?;
            println!(
                "pool {}: slots {} -> {}",
                change.name, change.old_slots, change.slots
            );
            Ok(0)
        }
    }
}
