//! A tiny stand-in for xlnd in unit tests: an HTTP/1.1 server on 127.0.0.1 that checks Basic auth
//! like xlnd (401 otherwise), serves a small help table in xlnd's format, answers a few methods and
//! records every authenticated request. Real end-to-end tests run the real xlnd elsewhere.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::connection::Credentials;

/// The cookie user the fake daemon accepts.
pub const USER: &str = "__cookie__";
/// The cookie password the fake daemon accepts.
pub const PASSWORD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A running fake daemon; stops when dropped.
pub struct FakeDaemon {
    /// Its JSON-RPC URL.
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    server_task: JoinHandle<()>,
}

impl FakeDaemon {
    /// Starts a fake daemon on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let server_task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, Arc::clone(&recorded)));
            }
        });
        Ok(FakeDaemon {
            url,
            requests,
            server_task,
        })
    }

    /// The authenticated JSON-RPC requests received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .expect("no test thread panicked holding the lock")
            .clone()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}

/// Answers one request on `stream`, then closes it.
async fn serve_connection(mut stream: TcpStream, requests: Arc<Mutex<Vec<Value>>>) {
    let Some((head, body)) = read_request(&mut stream).await else {
        return;
    };
    let expected_auth = format!(
        "authorization: {}",
        Credentials::new(USER, PASSWORD).authorization_header_value()
    );
    let authenticated = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case(&expected_auth));
    let response = if !authenticated {
        "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    } else {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        requests
            .lock()
            .expect("no test thread panicked holding the lock")
            .push(request.clone());
        let answer = answer(&request).to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request head (as text) and body, or `None` if the connection ends first.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head_end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
            let content_length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let body_start = head_end + 4;
            if received.len() >= body_start + content_length {
                return Some((
                    head,
                    received[body_start..body_start + content_length].to_vec(),
                ));
            }
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

/// The fake daemon's help table, in xlnd's format.
pub fn help_table() -> Value {
    json!({"methods": [
        {"name": "getinfo", "description": "Show this node.", "params": [], "result": "node_id, alias"},
        {"name": "invoice", "description": "Create an invoice.\nIts preimage stays in the node.", "params": [
            {"name": "amount_msat", "type": "integer|any", "required": true, "description": "Amount, or any"},
            {"name": "description", "type": "string", "required": true, "description": "Shown to the payer"},
            {"name": "expiry_secs", "type": "integer", "required": false, "description": "Validity"}
        ], "result": "bolt11, payment_hash"},
        {"name": "pay", "description": "Pay a BOLT11 invoice.", "params": [
            {"name": "bolt11", "type": "string", "required": true, "description": "The invoice"},
            {"name": "amount_msat", "type": "integer", "required": false, "description": "Amount"}
        ], "result": "payment_preimage"}
    ]})
}

/// The JSON-RPC response to `request`: `invoice` echoes its params, `pay` always fails.
fn answer(request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let outcome = match request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "help" => match params.get("method").and_then(Value::as_str) {
            None => Ok(help_table()),
            Some(name) => {
                let entries = help_table()["methods"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                match entries.into_iter().find(|entry| entry["name"] == name) {
                    Some(entry) => Ok(json!({"methods": [entry]})),
                    None => {
                        Err(json!({"code": -32601, "message": format!("unknown method {name}")}))
                    }
                }
            }
        },
        "getinfo" => Ok(json!({"node_id": "02aa", "alias": "fake"})),
        "invoice" => Ok(json!({"received_params": params})),
        "pay" => Err(
            json!({"code": -32010, "message": "no route to the payee", "data": {"attempts": 2}}),
        ),
        other => Err(json!({"code": -32601, "message": format!("unknown method {other}")})),
    };
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    }
}
