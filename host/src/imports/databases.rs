//! `postgres-*`, `redis-*` and `mongo-*`: capabilities scoped by member name
//! (`postgres:query:postgres-cluster-0`). The read interfaces refuse, before
//! any backend sees them, commands that are not on the read-only lists.

use serde_json::json;

use super::{Checked, Effect, HostState};
use crate::domain::names;
use crate::domain::readonly;
use crate::wit::pattern::runner::policy::{mongo_read, mongo_write, postgres_read, postgres_write, redis_read, redis_write};
use crate::wit::{Error, ErrorCode};

type Answer<T> = wasmtime::Result<Result<T, Error>>;

/// The capability scope of a call on `member` needs, once its name is checked: it
/// becomes a Pod name and the capability's scope.
fn member_scope(member: &str) -> Checked<'_> {
    names::label("member", member)?;
    Ok(member)
}

impl postgres_read::Host for HostState {
    async fn query(&mut self, member: String, sql: String, params: Vec<String>) -> Answer<String> {
        let args = || json!({"member": member, "sql": sql, "params": params});
        let pg = self.backends().postgres.clone();
        self.guarded("postgres-read.query", member_scope(&member), args, Effect::Read, async { pg.query(&member, &sql, &params).await }).await
    }
}

impl postgres_write::Host for HostState {
    async fn execute(&mut self, member: String, sql: String, params: Vec<String>) -> Answer<u64> {
        let args = || json!({"member": member, "sql": sql, "params": params});
        let pg = self.backends().postgres.clone();
        let effect = Effect::Mutate { dry_run_answer: 0 };
        self.guarded("postgres-write.execute", member_scope(&member), args, effect, async { pg.execute(&member, &sql, &params).await }).await
    }
}

impl redis_read::Host for HostState {
    async fn command(&mut self, member: String, args: Vec<String>) -> Answer<String> {
        if !readonly::redis_is_read(&args) {
            let verb = args.iter().take(2).cloned().collect::<Vec<_>>().join(" ");
            return self
                .refuse_write(
                    "redis-read.command",
                    json!({"member": member, "args": args}),
                    format!("`{verb}` is not a read-only Redis command; it needs redis-write and the redis:command capability"),
                )
                .await;
        }
        let journal_args = || json!({"member": member, "args": args});
        let redis = self.backends().redis.clone();
        self.guarded("redis-read.command", member_scope(&member), journal_args, Effect::Read, async { redis.command(&member, &args).await }).await
    }
}

impl redis_write::Host for HostState {
    async fn command(&mut self, member: String, args: Vec<String>) -> Answer<String> {
        let journal_args = || json!({"member": member, "args": args});
        let redis = self.backends().redis.clone();
        let effect = Effect::Mutate { dry_run_answer: "\"OK\"".to_string() };
        self.guarded("redis-write.command", member_scope(&member), journal_args, effect, async { redis.command(&member, &args).await }).await
    }
}

impl mongo_read::Host for HostState {
    async fn run_command(&mut self, member: String, db: String, command: String) -> Answer<String> {
        let document: serde_json::Value = match serde_json::from_str(&command) {
            Ok(doc) => doc,
            Err(e) => return Ok(Err(Error { code: ErrorCode::Invalid, message: format!("command is not JSON: {e}") })),
        };
        let args = || json!({"member": member, "db": db, "command": document});
        if !readonly::mongo_is_read(&command) {
            return self
                .refuse_write("mongo-read.run-command", args(), "not a read-only MongoDB command; it needs mongo-write and the mongo:command capability".into())
                .await;
        }
        let mongo = self.backends().mongo.clone();
        self.guarded("mongo-read.run-command", names::mongo_database(&db).and_then(|()| member_scope(&member)), args, Effect::Read, async {
            mongo.run_command(&member, &db, &command).await
        })
        .await
    }
}

impl mongo_write::Host for HostState {
    async fn run_command(&mut self, member: String, db: String, command: String) -> Answer<String> {
        let args = || json!({"member": member, "db": db, "command": serde_json::from_str::<serde_json::Value>(&command).unwrap_or_else(|_| json!(command))});
        let mongo = self.backends().mongo.clone();
        let effect = Effect::Mutate { dry_run_answer: "{\"ok\":1}".to_string() };
        self.guarded("mongo-write.run-command", names::mongo_database(&db).and_then(|()| member_scope(&member)), args, effect, async {
            mongo.run_command(&member, &db, &command).await
        })
        .await
    }
}

impl HostState {
    /// A write sent through a read-only interface.
    async fn refuse_write(&mut self, call: &'static str, mut args: serde_json::Value, message: String) -> Answer<String> {
        crate::journal::redact(&mut args);
        Ok(Err(self.deny(call, args, message, std::time::Instant::now())?))
    }
}
