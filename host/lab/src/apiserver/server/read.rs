//! Reads: get, list (with limit and continue) and watch (from a
//! resourceVersion, with bookmarks and the initial events), in JSON, Table
//! or PartialObjectMetadata.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Call, Query, Repr, json_response, render, stopped};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::selector::{FieldSelector, LabelSelector};
use crate::apiserver::store::{EventType, HistEntry};
use crate::apiserver::table::{self, Include};

const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// GET of one object, or of its status (the same object).
pub(super) fn get(call: &Call, name: &str) -> Result<Response, ApiError> {
    let res = call.res();
    let obj = call.store().get_res(res, call.ns(), name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
    Ok(json_response(200, &call.render(&obj)))
}

pub(super) fn selectors(res: &Resource, query: &Query, name: Option<&str>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?;
    let mut field = query.get("fieldSelector").unwrap_or_default().to_string();
    if let Some(n) = name {
        if !field.is_empty() {
            field.push(',');
        }
        field.push_str(&format!("metadata.name={n}"));
    }
    Ok((labels, FieldSelector::parse(&field, res.fields)?))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

pub(super) fn list(call: &Call) -> Result<Response, ApiError> {
    let (store, res, ns, query, repr) = (call.store(), call.res(), call.target.namespace.as_deref(), &call.query, call.repr);
    let (labels, fields) = selectors(res, query, None)?;
    let (mut items, rv) = store.list_res(res, ns, &labels, &fields);
    let mut list_rv = rv;
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default(),
            o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
        )
    };
    if let Some(token) = query.get("continue").filter(|s| !s.is_empty()) {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
        list_rv = decoded.rv;
        items.retain(|o| key(o) > decoded.start);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let token = ContinueToken { rv: list_rv, start: key(items.last().expect("limit > 0")) };
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default());
        meta["continue"] = json!(encoded);
        meta["remainingItemCount"] = json!(remaining);
    }
    let body = match repr {
        Repr::Table => {
            let refs: Vec<&Value> = items.iter().map(|o| &**o).collect();
            table::table(res, &refs, Include::parse(query.get("includeObject")), meta)
        }
        Repr::Partial => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": items.iter().map(|o| table::partial_metadata(o)).collect::<Vec<_>>(),
        }),
        Repr::Json => json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": meta,
            "items": items.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
        }),
    };
    Ok(json_response(200, &body))
}

fn watch_frame(event_type: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct WatchFilter {
    res_index: usize,
    res: &'static Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    repr: Repr,
    include: Include,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(n) if self.res.namespaced => o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n.as_str()),
            _ => true,
        };
        ns_ok && self.labels.matches_object(o) && self.fields.matches(o)
    }

    fn render(&self, o: &Value) -> Value {
        render(self.res, o, self.repr, self.include)
    }

    /// The watch event (type and object) for a history entry, if any.
    fn event(&self, e: &HistEntry) -> Option<(&'static str, Value)> {
        if e.res != self.res_index {
            return None;
        }
        let now = self.matches(&e.object);
        match e.event_type {
            EventType::Added => now.then(|| ("ADDED", self.render(&e.object))),
            EventType::Deleted => now.then(|| ("DELETED", self.render(&e.object))),
            EventType::Modified => {
                let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", self.render(&e.object))),
                    (false, true) => Some(("ADDED", self.render(&e.object))),
                    (true, false) => {
                        let mut last = (**e.prev.as_ref().expect("matched")).clone();
                        last["metadata"]["resourceVersion"] = json!(e.rv.to_string());
                        Some(("DELETED", self.render(&last)))
                    }
                    (false, false) => None,
                }
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        match self.repr {
            Repr::Json => json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta}),
            Repr::Partial => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}),
            Repr::Table => json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": [], "rows": []}),
        }
    }
}

pub(super) fn watch(call: &Call, name: Option<&str>) -> Result<Response, ApiError> {
    let (app, t, query, repr) = (call.app.clone(), &call.target, &call.query, call.repr);
    let res = t.res;
    let (labels, fields) = selectors(res, query, name)?;
    let filter = WatchFilter {
        res_index: resources::index(res),
        res,
        namespace: t.namespace.clone(),
        labels,
        fields,
        repr,
        include: Include::parse(query.get("includeObject")),
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    let timeout = query.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0).map(Duration::from_secs).unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let rv_param = query.get("resourceVersion").unwrap_or_default();
    let start_rv: Option<u64> = match rv_param {
        "" | "0" => None,
        s => Some(s.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?),
    };
    let store = app.store.clone();
    let mut rv_rx = store.rv_receiver();
    let mut stop = app.stop.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    // The starting state is taken now, before the response goes out.
    let (initial, mut last) = if start_rv.is_none() || send_initial {
        let (items, rv) = store.list_res(res, t.namespace.as_deref(), &filter.labels, &filter.fields);
        (Some(items), rv)
    } else {
        (None, start_rv.unwrap_or(0))
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        if let Some(items) = initial {
            for o in items {
                if tx.send(watch_frame("ADDED", filter.render(&o))).await.is_err() {
                    return;
                }
            }
            if send_initial && bookmarks && tx.send(watch_frame("BOOKMARK", filter.bookmark(last, true))).await.is_err() {
                return;
            }
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
        loop {
            rv_rx.borrow_and_update();
            match store.events_after(last) {
                Err(e) => {
                    let _ = tx.send(watch_frame("ERROR", e.to_status())).await;
                    return;
                }
                Ok(entries) => {
                    for e in entries {
                        last = e.rv;
                        if let Some((ty, obj)) = filter.event(&e)
                            && tx.send(watch_frame(ty, obj)).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
            tokio::select! {
                r = rv_rx.changed() => if r.is_err() { return },
                _ = ticker.tick() => {
                    if bookmarks && tx.send(watch_frame("BOOKMARK", filter.bookmark(last, false))).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = stopped(&mut stop) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx)) });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp.into_response())
}
