//! A stand-in qtumd for unit tests: a JSON-RPC-over-HTTP server on localhost that answers from
//! the regtest captures of a real qtumd 27.1 (`fixtures/qtum-regtest/`), with keep-alive
//! connections as bitcoincore-rpc's transport expects.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// A node error: JSON-RPC code and message.
pub type NodeError = (i32, String);

/// What the stand-in knows; tests change it between calls.
#[derive(Default)]
pub struct NodeState {
    pub blockchain_info: Value,
    pub hash_by_height: HashMap<u64, String>,
    pub header_by_hash: HashMap<String, Value>,
    pub block_hex_by_hash: HashMap<String, String>,
    pub txids_by_hash: HashMap<String, Vec<String>>,
    pub estimatesmartfee: Value,
    /// `gettxout` answers by `txid:vout`; anything else is `null`.
    pub txouts: HashMap<String, Value>,
    pub sendrawtransaction: Option<Result<Value, NodeError>>,
    /// Every call, as `method`.
    pub calls: Vec<String>,
}

impl NodeState {
    fn answer(&mut self, method: &str, params: &[Value]) -> Result<Value, NodeError> {
        self.calls.push(method.to_owned());
        let text = |i: usize| {
            params
                .get(i)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let not_found = || (-5, "Block not found".to_owned());
        match method {
            "getblockchaininfo" => Ok(self.blockchain_info.clone()),
            "getblockhash" => {
                let height = params.first().and_then(Value::as_u64).unwrap_or(u64::MAX);
                self.hash_by_height
                    .get(&height)
                    .map(|hash| json!(hash))
                    .ok_or((-8, "Block height out of range".to_owned()))
            }
            "getblockheader" => self
                .header_by_hash
                .get(&text(0))
                .cloned()
                .ok_or_else(not_found),
            "getblock" => match params.get(1).and_then(Value::as_u64) {
                Some(0) => self
                    .block_hex_by_hash
                    .get(&text(0))
                    .map(|hex| json!(hex))
                    .ok_or_else(not_found),
                _ => self
                    .txids_by_hash
                    .get(&text(0))
                    .map(|txids| json!({ "hash": text(0), "tx": txids, "flags": "proof-of-work" }))
                    .ok_or_else(not_found),
            },
            "estimatesmartfee" => Ok(self.estimatesmartfee.clone()),
            "gettxout" => {
                let vout = params.get(1).and_then(Value::as_u64).unwrap_or_default();
                Ok(self
                    .txouts
                    .get(&format!("{}:{vout}", text(0)))
                    .cloned()
                    .unwrap_or(Value::Null))
            }
            "sendrawtransaction" => self
                .sendrawtransaction
                .clone()
                .unwrap_or_else(|| Err((-32603, "no answer configured".to_owned()))),
            other => Err((-32601, format!("Method not found: {other}"))),
        }
    }
}

/// The running stand-in.
pub struct MockQtumd {
    pub url: String,
    pub state: Arc<Mutex<NodeState>>,
}

impl MockQtumd {
    /// Starts serving `state` on a free localhost port (threads end with the test process).
    pub fn start(state: NodeState) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(state));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Ok(Self { url, state })
    }

    /// Changes the state.
    pub fn with_state<T>(&self, change: impl FnOnce(&mut NodeState) -> T) -> T {
        match self.state.lock() {
            Ok(mut state) => change(&mut state),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }
}

/// Answers requests on one connection until the client closes it.
fn serve(stream: TcpStream, state: &Mutex<NodeState>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(body) = read_request(&mut reader) {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let method = request["method"].as_str().unwrap_or_default();
        let params = request["params"].as_array().cloned().unwrap_or_default();
        let answer = match state.lock() {
            Ok(mut state) => state.answer(method, &params),
            Err(_) => Err((-1, "poisoned".to_owned())),
        };
        let (status, response) = match answer {
            Ok(result) => (
                "200 OK",
                json!({ "result": result, "error": null, "id": request["id"] }),
            ),
            Err((code, message)) => (
                "500 Internal Server Error",
                json!({ "result": null, "error": { "code": code, "message": message }, "id": request["id"] }),
            ),
        };
        let body = response.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// One HTTP request's body, or `None` when the connection is closed.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut content_length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}
