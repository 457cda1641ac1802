//! `pods/portforward` over WebSocket, in the two protocols clients speak:
//!
//! - `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+): a SPDY session tunnelled
//!   in binary messages; each forwarded connection is a pair of streams, an
//!   `error` and a `data` one, sharing a `requestID` ([`super::spdy`]).
//! - `v5.channel.k8s.io` / `v4.channel.k8s.io` (kube-rs `Api::portforward`,
//!   client-go's WebSocket dialer): one connection per port asked for in
//!   `?ports=`, on channels `2i` (data) and `2i+1` (error), each opened by
//!   a frame carrying the port (two bytes, little-endian).
//!
//! The lab's Pods are processes listening on their own loopback address,
//! so a forwarded connection goes to `status.podIP:port`, where the real
//! kubelet would dial the port in the Pod's network namespace.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::error::ApiError;
use super::server::{error_response, stopped};
use super::spdy::{self, FLAG_FIN, Frame};

const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const CHANNEL_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// How long dialling the Pod may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes one frame carries from the Pod.
const CHUNK: usize = 32 * 1024;

/// A checked port-forward request: where the Pod listens.
pub(crate) struct ForwardRequest {
    namespace: String,
    pod: String,
    uid: String,
    ip: IpAddr,
    /// The ports of `?ports=` (the channel protocols forward these; SPDY
    /// streams name their own port).
    ports: Vec<u16>,
}

/// Checks a port-forward request; the caller has found the Pod.
pub(crate) fn parse_request(namespace: &str, pod: &Value, query: &[(String, String)]) -> Result<ForwardRequest, ApiError> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut ports = Vec::new();
    for value in query.iter().filter(|(k, _)| k == "ports").flat_map(|(_, v)| v.split(',')).map(str::trim).filter(|v| !v.is_empty()) {
        ports.push(parse_port(value).map_err(ApiError::bad_request)?);
    }
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
    if phase != "Running" {
        return Err(ApiError::bad_request(format!("pod {name} is not running (phase {phase:?}): cannot forward a port to it")));
    }
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} has no IP address yet")))?;
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(ForwardRequest { namespace: namespace.to_string(), pod: name, uid, ip, ports })
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("invalid port {text:?}: a port is a number from 1 to 65535")),
    }
}

/// Upgrades to a WebSocket in the protocol the client offers first among
/// those served, and forwards until either side ends or the server stops.
pub(crate) async fn upgrade(req: axum::extract::Request, forward: ForwardRequest, stop: watch::Receiver<bool>) -> Response {
    let offered: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let (mut parts, _body) = req.into_parts();
    let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        // No 101: what makes kubectl fall back from WebSocket to SPDY, which the lab does not serve.
        return error_response(&ApiError::bad_request(format!(
            "Upgrade request required: pods/portforward is served over WebSocket ({SPDY_TUNNEL}, v5.channel.k8s.io or v4.channel.k8s.io) only"
        )));
    };
    let Some(protocol) = offered.iter().find(|p| *p == SPDY_TUNNEL || CHANNEL_PROTOCOLS.contains(&p.as_str())).cloned() else {
        return error_response(&ApiError::bad_request(format!(
            "unsupported port-forward subprotocols {offered:?}: use {SPDY_TUNNEL}, v5.channel.k8s.io or v4.channel.k8s.io"
        )));
    };
    if protocol != SPDY_TUNNEL && forward.ports.is_empty() {
        return error_response(&ApiError::bad_request("at least one port is required: ?ports=PORT[,PORT...]"));
    }
    let ws = ws.protocols([SPDY_TUNNEL, CHANNEL_PROTOCOLS[0], CHANNEL_PROTOCOLS[1]]);
    ws.on_upgrade(move |socket| async move {
        if protocol == SPDY_TUNNEL {
            spdy_session(socket, forward, stop).await;
        } else {
            channel_session(socket, forward, protocol == CHANNEL_PROTOCOLS[0], stop).await;
        }
    })
    .into_response()
}

/// The error a client sees when the Pod does not answer, in upstream's words.
fn dial_error(forward: &ForwardRequest, port: u16, e: impl std::fmt::Display) -> String {
    format!("error forwarding port {port} to pod {}, uid {}: failed to connect to {}:{port}: {e}", forward.pod, forward.uid, forward.ip)
}

async fn dial(forward: &ForwardRequest, port: u16) -> Result<TcpStream, String> {
    let address = SocketAddr::new(forward.ip, port);
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => {
            tracing::info!("port-forward to pod {}/{} port {port}", forward.namespace, forward.pod);
            Ok(stream)
        }
        Ok(Err(e)) => Err(dial_error(forward, port, e)),
        Err(_) => Err(dial_error(forward, port, "timed out")),
    }
}

/// Copies from the Pod into `frames` (made by `frame`) until EOF, then sends `end`.
fn copy_from_pod(
    tasks: &mut JoinSet<()>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    out: mpsc::Sender<Vec<u8>>,
    frame: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
    end: Option<Vec<u8>>,
) {
    tasks.spawn(async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(frame(&buffer[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        if let Some(end) = end {
            let _ = out.send(end).await;
        }
    });
}

/// Writes what `input` yields to the Pod; when it ends, half-closes.
fn copy_to_pod(tasks: &mut JoinSet<()>, mut to: tokio::net::tcp::OwnedWriteHalf) -> mpsc::Sender<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    tasks.spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    tx
}

/// The two streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
}

/// One kubectl port-forward session: every connection kubectl accepts
/// locally becomes a stream pair here, and a TCP connection to the Pod.
async fn spdy_session(socket: WebSocket, forward: ForwardRequest, mut stop: watch::Receiver<bool>) {
    let (mut sink, mut stream) = socket.split();
    let mut session = spdy::Session::new();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut tasks = JoinSet::new();
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    // Data stream id -> the writer to its Pod connection.
    let mut to_pod: BTreeMap<u32, mpsc::Sender<Vec<u8>>> = BTreeMap::new();
    loop {
        let message = tokio::select! {
            frame = out_rx.recv() => {
                let Some(frame) = frame else { return };
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
                continue;
            }
            message = stream.next() => message,
            _ = stopped(&mut stop) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
        };
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(_)) => continue,
        };
        session.receive(&bytes);
        loop {
            let frame = match session.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("port-forward to pod {}: {e}", forward.pod);
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1002, reason: e.to_string().into() }))).await;
                    return;
                }
            };
            let mut replies = Vec::new();
            match frame {
                Frame::SynStream { stream_id, headers, .. } => {
                    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
                    let port = match parse_port(&header("port")) {
                        Ok(port) => port,
                        Err(_) => {
                            replies.push(spdy::rst_stream(stream_id));
                            send_all(&out_tx, replies).await;
                            continue;
                        }
                    };
                    match session.syn_reply(stream_id) {
                        Ok(reply) => replies.push(reply),
                        Err(e) => {
                            tracing::debug!("port-forward to pod {}: {e}", forward.pod);
                            return;
                        }
                    }
                    let pair = pairs.entry(header("requestid")).or_default();
                    pair.port = port;
                    match header("streamtype").as_str() {
                        "error" => pair.error = Some(stream_id),
                        "data" => pair.data = Some(stream_id),
                        _ => replies.push(spdy::rst_stream(stream_id)),
                    }
                    send_all(&out_tx, replies).await;
                    let complete = pairs.iter().find(|(_, p)| p.error.is_some() && p.data.is_some()).map(|(id, _)| id.clone());
                    if let Some(request) = complete.and_then(|id| pairs.remove(&id)) {
                        let (Some(error_stream), Some(data_stream)) = (request.error, request.data) else { continue };
                        match dial(&forward, request.port).await {
                            Ok(connection) => {
                                let (from, to) = connection.into_split();
                                to_pod.insert(data_stream, copy_to_pod(&mut tasks, to));
                                let end = spdy::data(data_stream, FLAG_FIN, &[]);
                                copy_from_pod(&mut tasks, from, out_tx.clone(), move |chunk| spdy::data(data_stream, 0, chunk), Some(end));
                                // Nothing went wrong: the error stream ends empty.
                                send_all(&out_tx, vec![spdy::data(error_stream, FLAG_FIN, &[])]).await;
                            }
                            Err(message) => {
                                tracing::info!("{message}");
                                send_all(&out_tx, vec![spdy::data(error_stream, FLAG_FIN, message.as_bytes()), spdy::data(data_stream, FLAG_FIN, &[])]).await;
                            }
                        }
                    }
                }
                Frame::Data { stream_id, fin, data } => {
                    if let Some(writer) = to_pod.get(&stream_id)
                        && !data.is_empty()
                        && writer.send(data).await.is_err()
                    {
                        to_pod.remove(&stream_id);
                    }
                    if fin {
                        // kubectl's local connection closed its sending side: so does ours to the Pod.
                        to_pod.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id } => {
                    to_pod.remove(&stream_id);
                }
                Frame::Ping { id } => send_all(&out_tx, vec![spdy::ping(id)]).await,
                Frame::GoAway => return,
                Frame::Ignored => {}
            }
        }
    }
}

async fn send_all(out: &mpsc::Sender<Vec<u8>>, frames: Vec<Vec<u8>>) {
    for frame in frames {
        let _ = out.send(frame).await;
    }
}

fn channel_frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    frame
}

/// One connection per port of `?ports=`, on numbered channels; the session
/// ends when the client closes it or every Pod connection has ended.
async fn channel_session(socket: WebSocket, forward: ForwardRequest, v5: bool, mut stop: watch::Receiver<bool>) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut tasks = JoinSet::new();
    let mut to_pod: BTreeMap<u8, mpsc::Sender<Vec<u8>>> = BTreeMap::new();
    let mut open = 0usize;
    for (index, port) in forward.ports.iter().copied().enumerate() {
        let (data, error) = ((2 * index) as u8, (2 * index + 1) as u8);
        for channel in [data, error] {
            if sink.send(Message::Binary(channel_frame(channel, &port.to_le_bytes()).into())).await.is_err() {
                return;
            }
        }
        match dial(&forward, port).await {
            Ok(connection) => {
                let (from, to) = connection.into_split();
                to_pod.insert(data, copy_to_pod(&mut tasks, to));
                copy_from_pod(&mut tasks, from, out_tx.clone(), move |chunk| channel_frame(data, chunk), None);
                open += 1;
            }
            Err(message) => {
                tracing::info!("{message}");
                if sink.send(Message::Binary(channel_frame(error, message.as_bytes()).into())).await.is_err() {
                    return;
                }
            }
        }
    }
    // Each reader holds a sender: the channel closes when every Pod connection has ended.
    drop(out_tx);
    let mut client_open = true;
    let mut ended = open == 0;
    while !ended {
        tokio::select! {
            frame = out_rx.recv() => match frame {
                Some(frame) => if sink.send(Message::Binary(frame.into())).await.is_err() { return; },
                // Every reader has ended: every Pod connection is closed.
                None => ended = true,
            },
            message = stream.next(), if client_open => match message {
                Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => match bytes[0] {
                    255 if v5 && bytes.len() > 1 => { to_pod.remove(&bytes[1]); }
                    channel => {
                        if let Some(writer) = to_pod.get(&channel)
                            && bytes.len() > 1
                            && writer.send(bytes[1..].to_vec()).await.is_err()
                        {
                            to_pod.remove(&channel);
                        }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = stopped(&mut stop) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
        }
        client_open = client_open && !ended;
    }
    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    // Let the client read the close frame before the connection drops.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
