//! Writes: create (POST on a collection), update (PUT) and patch (PATCH) of
//! an object or of its status.

use axum::extract::Request;
use axum::response::Response;

use super::{Call, content_type, json_response, parse_object_body, read_body};
use crate::apiserver::error::ApiError;
use crate::apiserver::patch::PatchType;
use crate::apiserver::store::Part;

pub(super) async fn create(call: &Call, req: Request) -> Result<Response, ApiError> {
    let obj = object_body(req).await?;
    let created = call.store().create_res(call.res(), call.ns_for_write(), obj, call.dry_run())?;
    Ok(json_response(201, &call.render(&created)))
}

/// PUT of the object (answered in the representation asked for) or of its
/// status (answered as JSON).
pub(super) async fn update(call: &Call, req: Request, name: &str, part: Part) -> Result<Response, ApiError> {
    let obj = object_body(req).await?;
    let updated = call.store().update_res(call.res(), call.ns_for_write(), name, obj, part, call.dry_run())?;
    let body = match part {
        Part::Main => call.render(&updated),
        Part::Status => (*updated).clone(),
    };
    Ok(json_response(200, &body))
}

/// PATCH in any patch type; an apply patch of a missing object creates it (201).
pub(super) async fn patch(call: &Call, req: Request, name: &str, part: Part) -> Result<Response, ApiError> {
    let ct = content_type(req.headers());
    let pt = PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    if pt == PatchType::Apply && call.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("PATCH requests with apply content type (application/apply-patch+yaml) require a fieldManager"));
    }
    let existed = call.store().get_res(call.res(), call.ns(), name).is_some();
    let body = read_body(req).await?;
    let obj = call.store().patch_res(call.res(), call.ns_for_write(), name, pt, &body, part, call.dry_run())?;
    let code = if existed { 200 } else { 201 };
    Ok(json_response(code, &call.render(&obj)))
}

/// The request's body as an object, in its content type (JSON or YAML).
pub(super) async fn object_body(req: Request) -> Result<serde_json::Value, ApiError> {
    let ct = content_type(req.headers());
    let body = read_body(req).await?;
    parse_object_body(&ct, &body)
}
