//! Request bodies in `application/vnd.kubernetes.protobuf`, as kubectl's
//! typed clients send them (`kubectl create configmap|secret|namespace`).
//!
//! The wire format is the API machinery's: the magic `k8s\0`, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` is the
//! object's message. The lab stores JSON, so a body is decoded into the
//! object's JSON form and handled like any other; answers stay JSON (the
//! server never answers protobuf: see `server::repr`). Only the kinds
//! below are decoded, with the fields a client sets on create; any other
//! kind gets a 415 that names the ones that are.

use std::collections::BTreeMap;

use base64::Engine;
use prost::Message;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::ApiError;

/// The media type of Kubernetes' protobuf encoding.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every protobuf-encoded object starts with.
const MAGIC: &[u8] = b"k8s\0";

/// The kinds whose protobuf bodies are decoded.
const DECODED: &str = "v1 ConfigMap, v1 Secret, v1 Namespace";

/// `k8s.io.apimachinery.pkg.runtime.Unknown`: the envelope.
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
}

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

/// `meta.v1.ObjectMeta`: the fields a client may set on create (the server
/// owns uid, resourceVersion, creationTimestamp and the like).
#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    #[serde(skip_serializing_if = "empty")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    #[serde(skip_serializing_if = "empty")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    #[serde(skip_serializing_if = "empty")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "6")]
    #[serde(skip_serializing_if = "empty")]
    resource_version: Option<String>,
    #[prost(btree_map = "string, string", tag = "11")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    finalizers: Vec<String>,
}

/// `meta.v1.OwnerReference`.
#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReference {
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(bool, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    block_owner_deletion: Option<bool>,
}

/// `core.v1.ConfigMap`.
#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(bool, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable: Option<bool>,
    #[prost(btree_map = "string, string", tag = "2")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty", serialize_with = "base64_values")]
    binary_data: BTreeMap<String, Vec<u8>>,
}

/// `core.v1.Secret`.
#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(bool, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable: Option<bool>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty", serialize_with = "base64_values")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(btree_map = "string, string", tag = "4")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    string_data: BTreeMap<String, String>,
    #[prost(string, optional, tag = "3")]
    #[serde(rename = "type", skip_serializing_if = "empty")]
    kind: Option<String>,
}

/// `core.v1.Namespace` (its status is the server's).
#[derive(Clone, PartialEq, Message, Serialize)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<NamespaceSpec>,
}

/// `core.v1.NamespaceSpec`.
#[derive(Clone, PartialEq, Message, Serialize)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    finalizers: Vec<String>,
}

fn empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// Bytes are base64 in Kubernetes' JSON, as in `data` of a Secret.
fn base64_values<S: serde::Serializer>(map: &BTreeMap<String, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    let engine = base64::engine::general_purpose::STANDARD;
    s.collect_map(map.iter().map(|(k, v)| (k, engine.encode(v))))
}

/// Decodes a protobuf-encoded object into its JSON form, with its
/// `apiVersion` and `kind`.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let malformed = |why: String| ApiError::bad_request(format!("the object provided is unrecognized (must be of type {MEDIA_TYPE}): {why}"));
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| malformed("it does not start with the protobuf magic \"k8s\\x00\"".into()))?;
    let unknown = Unknown::decode(envelope).map_err(|e| malformed(e.to_string()))?;
    if let Some(encoding) = unknown.content_encoding.as_deref().filter(|e| !e.is_empty()) {
        return Err(malformed(format!("content encoding {encoding:?} is not supported")));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => to_json(ConfigMap::decode(raw)),
        ("v1", "Secret") => to_json(Secret::decode(raw)),
        ("v1", "Namespace") => to_json(Namespace::decode(raw)),
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the lab decodes {MEDIA_TYPE} bodies of {DECODED} only (got {api_version} {kind}): send application/json"),
            ));
        }
    };
    let mut object = object.map_err(malformed)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    if object.get("metadata").is_none() {
        object["metadata"] = json!({});
    }
    Ok(object)
}

fn to_json<T: Serialize>(decoded: Result<T, prost::DecodeError>) -> Result<Value, String> {
    let object = decoded.map_err(|e| e.to_string())?;
    serde_json::to_value(object).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    #[test]
    fn a_secret_becomes_its_json_form() {
        let secret = Secret {
            metadata: Some(ObjectMeta { name: Some("s".into()), labels: BTreeMap::from([("a".into(), "b".into())]), ..Default::default() }),
            data: BTreeMap::from([("password".into(), b"hunter2".to_vec())]),
            kind: Some("Opaque".into()),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "b"}}, "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        let err = decode(&envelope("apps/v1", "StatefulSet", vec![])).unwrap_err();
        assert_eq!(err.code, 415);
        assert!(err.message.contains("apps/v1 StatefulSet"), "{}", err.message);
        assert_eq!(decode(b"{\"kind\":\"ConfigMap\"}").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\0\xff\xff\xff").unwrap_err().code, 400);
    }
}
