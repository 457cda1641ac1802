//! Which resource an `apiVersion` and `kind` name on this cluster, found
//! through the API server's discovery documents and remembered per run.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use super::errors;
use crate::backends::{BackendError, BackendResult, ErrorCode};

/// A resolved kind: its resource (plural, group, version) and whether it
/// lives in namespaces.
#[derive(Clone, Debug)]
pub(super) struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Discovery answers, cached: a run asks about the same few kinds again and again.
#[derive(Default)]
pub(super) struct Kinds {
    cache: Mutex<HashMap<(String, String), Kind>>,
}

/// `v1` -> ("", "v1"); `apps/v1` -> ("apps", "v1").
pub(super) fn split_api_version(api_version: &str) -> BackendResult<(&str, &str)> {
    let invalid = || BackendError::new(ErrorCode::Invalid, format!("`{api_version}` is not an apiVersion (`v1`, `apps/v1`, `policy/v1`)"));
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) if !group.is_empty() => (group, version),
        Some(_) => return Err(invalid()),
        None => ("", api_version),
    };
    if version.is_empty() || version.contains('/') || version.contains(char::is_whitespace) {
        return Err(invalid());
    }
    Ok((group, version))
}

impl Kinds {
    /// The resource for `api_version`/`kind`, asking the API server the first time.
    pub async fn resolve(&self, client: &kube::Client, api_version: &str, kind: &str, hint: Option<&str>) -> BackendResult<Kind> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = split_api_version(api_version)?;
        if kind.is_empty() {
            return Err(BackendError::new(ErrorCode::Invalid, "the kind is empty"));
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps): (ApiResource, ApiCapabilities) = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => {
                return Err(BackendError::new(ErrorCode::NotFound, format!("the API server serves no kind `{kind}` in `{api_version}`")));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(BackendError::new(
                    ErrorCode::NotFound,
                    format!("the API server serves no `{api_version}` (looking for kind `{kind}`): {}", errors::status_message(&status)),
                ));
            }
            Err(e) => return Err(errors::from_kube(e, hint)),
        };
        let found = Kind { resource, namespaced: caps.scope == Scope::Namespaced };
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, found.clone());
        Ok(found)
    }
}

/// A resource known without asking: the fixed kinds drain and cordon use.
pub(super) fn builtin(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_split_into_group_and_version() {
        assert_eq!(split_api_version("v1").unwrap(), ("", "v1"));
        assert_eq!(split_api_version("apps/v1").unwrap(), ("apps", "v1"));
        for bad in ["", "/v1", "apps/", "a/b/c", "apps/v 1"] {
            assert_eq!(split_api_version(bad).unwrap_err().code, ErrorCode::Invalid, "{bad}");
        }
    }
}
