//! Deletes: one object, or every object of a collection that the
//! selectors match, with DeleteOptions from the body or the query.

use axum::extract::Request;
use axum::response::Response;
use serde_json::{Value, json};

use super::read::selectors;
use super::{Call, Query, json_response, read_body};
use crate::apiserver::error::ApiError;
use crate::apiserver::store::DeleteOpts;

pub(super) async fn one(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let body = read_body(req).await?;
    let opts = delete_opts(&call.query, &body)?;
    let (obj, _) = call.store().delete_res(call.res(), call.ns_for_write(), name, &opts)?;
    Ok(json_response(200, &call.render(&obj)))
}

/// DELETE on a collection: each match is deleted in turn; one already gone
/// meanwhile is skipped, any other error stops the call.
pub(super) async fn collection(call: &Call, req: Request) -> Result<Response, ApiError> {
    let res = call.res();
    let body = read_body(req).await?;
    let opts = delete_opts(&call.query, &body)?;
    let (labels, fields) = selectors(res, &call.query, None)?;
    let (items, _) = call.store().list_res(res, call.target.namespace.as_deref(), &labels, &fields);
    let mut deleted = Vec::new();
    for o in items {
        let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let ons = o.pointer("/metadata/namespace").and_then(Value::as_str);
        match call.store().delete_res(res, ons, name, &opts) {
            Ok((obj, _)) => deleted.push((*obj).clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": call.store().resource_version().to_string()}, "items": deleted});
    Ok(json_response(200, &list))
}

fn delete_opts(query: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let b: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the DeleteOptions body could not be decoded: {e}")))?;
        opts.grace_period_seconds = b.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.precondition_uid = b.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        opts.precondition_rv = b.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
        opts.propagation = b.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
        if b.get("orphanDependents") == Some(&json!(true)) {
            opts.propagation = Some("Orphan".into());
        }
        opts.dry_run = b.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    }
    if let Some(g) = query.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?);
    }
    if let Some(p) = query.get("propagationPolicy") {
        opts.propagation = Some(p.to_string());
    }
    if query.get("orphanDependents") == Some("true") {
        opts.propagation = Some("Orphan".into());
    }
    opts.dry_run |= query.dry_run();
    Ok(opts)
}
