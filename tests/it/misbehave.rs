//! A deliberately misbehaving HTTP server on 127.0.0.1, for tests of what mailwave does when the
//! network or the service does not play along. Raw TCP, so that it can stall before the headers or
//! in the middle of a body, drop the connection, or send whatever bytes a test wants. Each request
//! is answered by the test's `respond` function; the server stops (and every stalled connection
//! ends) when it is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `CmdletName` of an InvokeCommand body.
    pub fn cmdlet(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v["CmdletInput"]["CmdletName"].as_str().map(str::to_string)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer with a JSON body (`None`: empty body).
    Json(u16, Option<serde_json::Value>),
    /// A complete answer with these headers and raw body bytes.
    Raw(u16, Vec<(String, String)>, Vec<u8>),
    /// Accept the request and never answer.
    Stall,
    /// Send the headers (declaring `length` bytes) and `partial` of the body, then stall.
    StallMidBody { length: usize, partial: Vec<u8> },
    /// Close the connection without a word.
    Drop,
    /// Headers without a length, then `total` bytes of `fill`, then close: a body that only ends
    /// when the server says so.
    Stream { fill: u8, total: usize },
    /// Pass the request on to `upstream` (host:port) and relay its answer.
    Forward(String),
    /// Pass the request on, let the service do the work, and drop the answer.
    ForwardThenDrop(String),
}

type Respond = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub struct Server {
    pub base: String,
    stop: Arc<AtomicBool>,
    /// Requests read so far.
    pub seen: Arc<Mutex<Vec<Request>>>,
    /// Requests being stalled right now.
    pub stalled: Arc<AtomicUsize>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

impl Server {
    /// Starts a server; `respond` gets each request and how many came before it.
    pub fn start(respond: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stalled = Arc::new(AtomicUsize::new(0));
        let respond: Arc<Respond> = Arc::new(respond);
        {
            let (stop, seen, stalled) = (stop.clone(), seen.clone(), stalled.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (stop, seen, stalled, respond) =
                        (stop.clone(), seen.clone(), stalled.clone(), respond.clone());
                    std::thread::spawn(move || serve(conn, &stop, &seen, &stalled, &*respond));
                }
            });
        }
        Server {
            base: format!("http://{addr}"),
            stop,
            seen,
            stalled,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until `pred` holds for what the server has seen.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&Server) -> bool) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if pred(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pred(self)
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn stall(stop: &AtomicBool, stalled: &AtomicUsize) {
    stalled.fetch_add(1, Ordering::SeqCst);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stalled.fetch_sub(1, Ordering::SeqCst);
}

fn head(status: u16, headers: &[(String, String)], length: usize) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {length}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn serve(
    conn: TcpStream,
    stop: &AtomicBool,
    seen: &Mutex<Vec<Request>>,
    stalled: &AtomicUsize,
    respond: &Respond,
) {
    // Blocking reads: a keep-alive connection ends when its client goes away.
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    while !stop.load(Ordering::SeqCst) {
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        let n = {
            let mut s = seen.lock().unwrap();
            s.push(req.clone());
            s.len() - 1
        };
        match respond(&req, n) {
            Reply::Json(status, body) => {
                let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
                let headers = [("content-type".to_string(), "application/json".to_string())];
                let _ = writer.write_all(&head(status, &headers, bytes.len()));
                let _ = writer.write_all(&bytes);
            }
            Reply::Raw(status, headers, bytes) => {
                let _ = writer.write_all(&head(status, &headers, bytes.len()));
                let _ = writer.write_all(&bytes);
            }
            Reply::Stall => return stall(stop, stalled),
            Reply::StallMidBody { length, partial } => {
                let _ = writer.write_all(&head(200, &[], length));
                let _ = writer.write_all(&partial);
                let _ = writer.flush();
                return stall(stop, stalled);
            }
            Reply::Drop => return,
            Reply::Stream { fill, total } => {
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: application/json\r\n\r\n");
                let chunk = vec![fill; 64 * 1024];
                let mut sent = 0;
                while sent < total && !stop.load(Ordering::SeqCst) {
                    let n = chunk.len().min(total - sent);
                    if writer.write_all(&chunk[..n]).is_err() {
                        break; // the client stopped reading
                    }
                    sent += n;
                }
                return;
            }
            Reply::Forward(upstream) => match forward(&upstream, &req) {
                Some(bytes) => {
                    let _ = writer.write_all(&bytes);
                }
                None => return,
            },
            Reply::ForwardThenDrop(upstream) => {
                let _ = forward(&upstream, &req);
                return;
            }
        }
        let _ = writer.flush();
    }
}

/// Sends `req` to `upstream` and returns its whole answer (status line, headers and body), with
/// `connection: close` dropped so the client's connection to us stays usable.
fn forward(upstream: &str, req: &Request) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        req.body.len()
    ));
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(&req.body).ok()?;
    let mut reader = BufReader::new(up);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    let mut out = status.into_bytes();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
            if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
        }
        out.extend_from_slice(h.as_bytes());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    Some(out)
}

/// An Entra token answer.
pub fn token() -> Reply {
    Reply::Json(
        200,
        Some(
            serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "test-token"}),
        ),
    )
}

/// A migration endpoint answer.
pub fn endpoint() -> Reply {
    Reply::Json(
        200,
        Some(
            serde_json::json!({"value": [{"Identity": "Hybrid", "MaxConcurrentMigrations": 100, "MaxConcurrentIncrementalSyncs": 20}]}),
        ),
    )
}

/// Token and endpoint answered properly; everything else as `rest` says.
pub fn exchange(
    rest: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request, usize) -> Reply + Send + Sync + 'static {
    move |req, n| {
        if req.path.ends_with("/oauth2/v2.0/token") {
            return token();
        }
        if req.cmdlet().as_deref() == Some("Get-MigrationEndpoint") {
            return endpoint();
        }
        rest(req, n)
    }
}
