//! Subresources beyond status: `scale` (StatefulSets, Deployments,
//! ReplicaSets), `eviction`, `exec`
//! and `portforward` (Pods), `finalize` (Namespaces).

use axum::extract::Request;
use axum::response::Response;
use serde_json::{Value, json};

use super::write::object_body;
use super::{Call, content_type, json_response, read_body};
use crate::apiserver::error::ApiError;
use crate::apiserver::patch::PatchType;
use crate::apiserver::store::{Part, Scale};
use crate::apiserver::{exec, portforward};

pub(super) fn scale_get(call: &Call, name: &str) -> Result<Response, ApiError> {
    Ok(json_response(200, &call.store().scale_get(call.res(), call.ns(), name)?))
}

pub(super) async fn scale_put(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let obj = object_body(req).await?;
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != "Scale"
    {
        return Err(ApiError::bad_request(format!("expected a Scale, got {k}")));
    }
    Ok(json_response(200, &call.store().scale_update(call.res(), call.ns(), name, Scale::Put(obj), call.dry_run())?))
}

pub(super) async fn scale_patch(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let ct = content_type(req.headers());
    let pt = PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let body = read_body(req).await?;
    Ok(json_response(200, &call.store().scale_update(call.res(), call.ns(), name, Scale::Patch(pt, body.to_vec()), call.dry_run())?))
}

/// POST `.../pods/NAME/eviction`: an empty body is an Eviction with no options.
pub(super) async fn evict(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let ct = content_type(req.headers());
    let body = read_body(req).await?;
    let mut eviction = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { super::parse_object_body(&ct, &body)? };
    if call.dry_run() {
        eviction["deleteOptions"]["dryRun"] = json!(["All"]);
    }
    let status = call.store().evict_res(call.ns(), name, &eviction)?;
    Ok(json_response(201, &status))
}

pub(super) async fn exec(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let res = call.res();
    let pod = call.store().get_res(res, call.ns(), name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
    let request = exec::parse_request(call.ns(), (*pod).clone(), &call.query.0)?;
    Ok(exec::upgrade(req, request, call.app.exec.clone(), call.app.stop.clone()).await)
}

pub(super) async fn portforward(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let res = call.res();
    let pod = call.store().get_res(res, call.ns(), name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
    let request = portforward::parse_request(call.ns(), &pod, &call.query.0)?;
    Ok(portforward::upgrade(req, request, call.app.stop.clone()).await)
}

/// PUT `/api/v1/namespaces/NAME/finalize`: an update of the Namespace.
pub(super) async fn finalize(call: &Call, req: Request, name: &str) -> Result<Response, ApiError> {
    let obj = object_body(req).await?;
    let updated = call.store().update_res(call.res(), None, name, obj, Part::Main, call.dry_run())?;
    Ok(json_response(200, &updated))
}
