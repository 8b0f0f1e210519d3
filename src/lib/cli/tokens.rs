//! `akkaflow token create|list|revoke`: the same operations as the API's `/api/v1/tokens`.

use super::{connect, fmt_time, os_actor, print_json, table, TokenCommand};
use crate::config::Config;
use crate::error::Result;
use crate::token;

pub(super) async fn token(cfg: &Config, cmd: TokenCommand) -> Result<i32> {
    let store = connect(cfg).await?;
    match cmd {
        TokenCommand::Create {
            name,
            role,
            dir,
            json,
        } => {
            let created = token::create(&store, &name, role, dir.as_deref(), &os_actor()).await?;
            if json {
                print_json(
                    &serde_json::json!({ "token": created.token, "secret": created.secret }),
                );
            } else {
                println!("{}", created.secret);
                eprintln!(
                    "token `{name}` ({role}, scope {}) created; the secret above is shown only once: \
                     send it as `Authorization: Bearer <secret>` or paste it on the UI's login page",
                    created.token.dir_prefix.as_deref().unwrap_or("/")
                );
            }
        }
        TokenCommand::List { json } => {
            let rows = store.token_list().await?;
            if json {
                print_json(&rows);
            } else {
                let mut t = table(&["NAME", "ROLE", "SCOPE", "CREATED", "BY", "REVOKED"]);
                for r in &rows {
                    t.add_row(vec![
                        r.name.clone(),
                        r.role.to_string(),
                        r.dir_prefix.clone().unwrap_or_else(|| "/".into()),
                        fmt_time(Some(r.created_at)),
                        r.created_by.clone(),
                        fmt_time(r.revoked_at),
                    ]);
                }
                println!("{t}");
            }
        }
        TokenCommand::Revoke { name } => {
            token::revoke(&store, &name, &os_actor()).await?;
            println!("token {name} revoked");
        }
    }
    Ok(0)
}
