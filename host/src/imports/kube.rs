//! `kube-read` and `kube-write`: capability `kube:<verb>:<apiVersion>/<Kind>`.

use serde_json::json;

use super::{Checked, Effect, HostState};
use crate::backends::{self, DrainOptions as Drain, ObjectRef as Ref, WaitFor as Until};
use crate::domain::names;
use crate::wit::Error;
use crate::wit::pattern::runner::policy::kube_read::{self, ListOptions, ObjectRef, WaitFor};
use crate::wit::pattern::runner::policy::kube_write::{self, DrainOptions, ExecOutput, PatchType};

type Answer<T> = wasmtime::Result<Result<T, Error>>;

fn kind_scope(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

/// The capability scope of a call on `object` needs, once its names are checked.
fn object_scope<'a>(object: &Ref, kind_scope: &'a str) -> Checked<'a> {
    names::object(&object.api_version, &object.kind, object.namespace.as_deref(), &object.name)?;
    Ok(kind_scope)
}

/// The capability scope of a call on one Pod needs, once its names are checked.
fn pod_scope(namespace: Option<&str>, pod: &str, container: Option<&str>) -> Checked<'static> {
    names::namespace(namespace, false)?;
    names::subdomain("Pod name", pod)?;
    if let Some(container) = container {
        names::label("container name", container)?;
    }
    Ok("v1/Pod")
}

/// The capability scope of a call on one Node needs, once its name is checked.
fn node_scope(node: &str) -> Checked<'static> {
    names::subdomain("Node name", node)?;
    Ok("v1/Node")
}

fn ref_args(object: &Ref) -> serde_json::Value {
    json!({"apiVersion": object.api_version, "kind": object.kind, "namespace": object.namespace, "name": object.name})
}

impl kube_read::Host for HostState {
    async fn get(&mut self, object: ObjectRef) -> Answer<String> {
        let object = Ref::from(object);
        let scope = kind_scope(&object.api_version, &object.kind);
        let kube = self.backends().kube.clone();
        self.guarded("kube-read.get", object_scope(&object, &scope), || ref_args(&object), Effect::Read, async { kube.get(&object).await }).await
    }

    async fn list(&mut self, options: ListOptions) -> Answer<String> {
        let options = backends::ListOptions::from(options);
        let scope = kind_scope(&options.api_version, &options.kind);
        let args = || json!({"apiVersion": options.api_version, "kind": options.kind, "namespace": options.namespace, "labelSelector": options.label_selector, "fieldSelector": options.field_selector});
        let kube = self.backends().kube.clone();
        let checked = names::list(
            &options.api_version,
            &options.kind,
            options.namespace.as_deref(),
            options.label_selector.as_deref(),
            options.field_selector.as_deref(),
        )
        .map(|()| scope.as_str());
        self.guarded("kube-read.list", checked, args, Effect::Read, async { kube.list(&options).await }).await
    }

    async fn wait_for_condition(&mut self, object: ObjectRef, until: WaitFor, timeout_ms: u64) -> Answer<String> {
        let object = Ref::from(object);
        let until = Until::from(until);
        let scope = kind_scope(&object.api_version, &object.kind);
        let args = || {
            let mut args = ref_args(&object);
            args["until"] = json!(format!("{until:?}"));
            args["timeoutMs"] = json!(timeout_ms);
            args
        };
        let kube = self.backends().kube.clone();
        self.guarded("kube-read.wait-for-condition", object_scope(&object, &scope), args, Effect::Read, async {
            kube.wait_for(&object, &until, timeout_ms).await
        })
        .await
    }
}

impl HostState {
    /// `patch` and `apply`: one object changed by a patch body, journaled as `call`.
    async fn patch_as(&mut self, call: &'static str, object: Ref, patch_type: backends::PatchType, body: String) -> Answer<String> {
        let scope = kind_scope(&object.api_version, &object.kind);
        let args = || {
            let mut args = ref_args(&object);
            args["patchType"] = json!(patch_type.name());
            if let backends::PatchType::Apply { force: true } = patch_type {
                args["force"] = json!(true);
            }
            args["body"] = serde_json::from_str(&body).unwrap_or_else(|_| json!(body));
            args
        };
        // A dry run answers with the body itself: the fields the pattern set.
        let answer = Effect::Mutate { dry_run_answer: if patch_type == backends::PatchType::Json { "{}".to_string() } else { body.clone() } };
        let kube = self.backends().kube.clone();
        self.guarded(call, object_scope(&object, &scope), args, answer, async { kube.patch(&object, patch_type, &body).await }).await
    }
}

impl kube_write::Host for HostState {
    async fn patch(&mut self, object: ObjectRef, kind: PatchType, body: String) -> Answer<String> {
        self.patch_as("kube-write.patch", Ref::from(object), backends::PatchType::from(kind), body).await
    }

    async fn apply(&mut self, object: ObjectRef, body: String, force: bool) -> Answer<String> {
        self.patch_as("kube-write.apply", Ref::from(object), backends::PatchType::Apply { force }, body).await
    }

    async fn delete(&mut self, object: ObjectRef, grace_period_seconds: Option<u32>) -> Answer<()> {
        let object = Ref::from(object);
        let scope = kind_scope(&object.api_version, &object.kind);
        let args = || {
            let mut args = ref_args(&object);
            args["gracePeriodSeconds"] = json!(grace_period_seconds);
            args
        };
        let kube = self.backends().kube.clone();
        let effect = Effect::Mutate { dry_run_answer: () };
        self.guarded("kube-write.delete", object_scope(&object, &scope), args, effect, async { kube.delete(&object, grace_period_seconds).await }).await
    }

    async fn scale(&mut self, object: ObjectRef, replicas: u32) -> Answer<()> {
        let object = Ref::from(object);
        let scope = kind_scope(&object.api_version, &object.kind);
        let args = || {
            let mut args = ref_args(&object);
            args["replicas"] = json!(replicas);
            args
        };
        let kube = self.backends().kube.clone();
        let effect = Effect::Mutate { dry_run_answer: () };
        self.guarded("kube-write.scale", object_scope(&object, &scope), args, effect, async { kube.scale(&object, replicas).await }).await
    }

    async fn evict(&mut self, namespace: Option<String>, pod: String) -> Answer<()> {
        let args = || json!({"namespace": namespace, "pod": pod});
        let kube = self.backends().kube.clone();
        let effect = Effect::Mutate { dry_run_answer: () };
        self.guarded("kube-write.evict", pod_scope(namespace.as_deref(), &pod, None), args, effect, async { kube.evict(namespace.as_deref(), &pod).await })
            .await
    }

    async fn cordon(&mut self, node: String) -> Answer<()> {
        self.set_unschedulable("kube-write.cordon", node, true).await
    }

    async fn uncordon(&mut self, node: String) -> Answer<()> {
        self.set_unschedulable("kube-write.uncordon", node, false).await
    }

    async fn drain(&mut self, node: String, options: DrainOptions) -> Answer<String> {
        let options = Drain::from(options);
        let args = || json!({"node": node, "options": format!("{options:?}")});
        let kube = self.backends().kube.clone();
        let effect = Effect::Mutate { dry_run_answer: json!({"node": node, "evicted": [], "dryRun": true}).to_string() };
        self.guarded("kube-write.drain", node_scope(&node), args, effect, async { kube.drain(&node, &options).await }).await
    }

    async fn exec(&mut self, namespace: Option<String>, pod: String, container: Option<String>, command: Vec<String>) -> Answer<ExecOutput> {
        let args = || json!({"namespace": namespace, "pod": pod, "container": container, "command": command});
        let kube = self.backends().kube.clone();
        let effect = Effect::Mutate { dry_run_answer: ExecOutput { exit_code: 0, stdout: String::new(), stderr: String::new() } };
        self.guarded("kube-write.exec", pod_scope(namespace.as_deref(), &pod, container.as_deref()), args, effect, async {
            kube.exec(namespace.as_deref(), &pod, container.as_deref(), &command).await.map(ExecOutput::from)
        })
        .await
    }
}

impl HostState {
    async fn set_unschedulable(&mut self, call: &'static str, node: String, unschedulable: bool) -> Answer<()> {
        let kube = self.backends().kube.clone();
        let effect = Effect::Mutate { dry_run_answer: () };
        self.guarded(call, node_scope(&node), || json!({"node": node}), effect, async { kube.set_unschedulable(&node, unschedulable).await }).await
    }
}
