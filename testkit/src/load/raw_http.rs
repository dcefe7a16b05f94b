//! A minimal HTTP/1.1 client with keep-alive, for load generation: a few microseconds of CPU
//! per request, so the generator takes little from the server it measures on a small machine.
//!
//! Requests are prebuilt byte strings; responses must carry `Content-Length` (actix-web's
//! JSON answers do).

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One answer: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum CallError {
    /// The TCP connection could not be made.
    Connect(io::Error),
    /// The connection broke while writing or reading.
    Io(io::Error),
    /// The peer sent something this client does not read (chunked, no length, garbage).
    Malformed(&'static str),
}

impl CallError {
    /// A short category for error counts.
    pub fn kind(&self) -> String {
        match self {
            CallError::Connect(error) => format!("connect: {:?}", error.kind()),
            CallError::Io(error) => format!("io: {:?}", error.kind()),
            CallError::Malformed(what) => format!("malformed: {what}"),
        }
    }
}

struct Connection {
    stream: TcpStream,
    /// Bytes read past the previous response (none with a well-behaved server).
    buffer: Vec<u8>,
}

/// A pool of keep-alive connections to one address; grows to the number of requests in
/// flight.
pub struct RawClient {
    address: SocketAddr,
    idle: Mutex<Vec<Connection>>,
    connects: AtomicU64,
}

impl RawClient {
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            idle: Mutex::new(Vec::new()),
            connects: AtomicU64::new(0),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// TCP connections opened so far (the pool's high-water mark, roughly).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Close every idle connection.
    pub fn clear(&self) {
        self.idle.lock().unwrap().clear();
    }

    /// Send one prebuilt request and read the answer. A reused connection that turns out
    /// closed before any byte of the answer arrived is replaced once, as hyper does.
    pub async fn send(&self, request: &[u8]) -> Result<Response, CallError> {
        let pooled = self.idle.lock().unwrap().pop();
        if let Some(mut connection) = pooled {
            match exchange(&mut connection, request).await {
                Ok((response, keep)) => {
                    if keep {
                        self.idle.lock().unwrap().push(connection);
                    }
                    return Ok(response);
                }
                Err(Exchange::BeforeAnswer(_)) => {}
                Err(Exchange::Failed(error)) => return Err(error),
            }
        }
        let mut connection = self.connect().await?;
        match exchange(&mut connection, request).await {
            Ok((response, keep)) => {
                if keep {
                    self.idle.lock().unwrap().push(connection);
                }
                Ok(response)
            }
            Err(Exchange::BeforeAnswer(error) | Exchange::Failed(error)) => Err(error),
        }
    }

    async fn connect(&self) -> Result<Connection, CallError> {
        let stream = TcpStream::connect(self.address)
            .await
            .map_err(CallError::Connect)?;
        // Each request is one write; without this, Nagle plus delayed ACKs add 40 ms stalls.
        stream.set_nodelay(true).map_err(CallError::Connect)?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(1024),
        })
    }
}

enum Exchange {
    /// Nothing of the answer arrived: safe to try again on a new connection.
    BeforeAnswer(CallError),
    Failed(CallError),
}

/// Write the request, read one answer; `true` when the connection may be reused.
async fn exchange(
    connection: &mut Connection,
    request: &[u8],
) -> Result<(Response, bool), Exchange> {
    connection
        .stream
        .write_all(request)
        .await
        .map_err(|error| Exchange::BeforeAnswer(CallError::Io(error)))?;
    let mut received_any = !connection.buffer.is_empty();
    let fail = |received_any: bool, error: CallError| {
        if received_any {
            Exchange::Failed(error)
        } else {
            Exchange::BeforeAnswer(error)
        }
    };
    let head_end = loop {
        if let Some(at) = find_head_end(&connection.buffer) {
            break at;
        }
        if connection.buffer.len() > MAX_HEAD_BYTES {
            return Err(Exchange::Failed(CallError::Malformed("head too large")));
        }
        let read = read_more(connection)
            .await
            .map_err(|error| fail(received_any, CallError::Io(error)))?;
        if read == 0 {
            let error = io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the answer");
            return Err(fail(received_any, CallError::Io(error)));
        }
        received_any = true;
    };
    let head = parse_head(&connection.buffer[..head_end]).map_err(Exchange::Failed)?;
    let total = head_end + head.content_length;
    while connection.buffer.len() < total {
        let read = read_more(connection)
            .await
            .map_err(|error| Exchange::Failed(CallError::Io(error)))?;
        if read == 0 {
            let error = io::Error::new(io::ErrorKind::UnexpectedEof, "closed within the body");
            return Err(Exchange::Failed(CallError::Io(error)));
        }
    }
    let body = connection.buffer[head_end..total].to_vec();
    connection.buffer.drain(..total);
    Ok((
        Response {
            status: head.status,
            body,
        },
        !head.close,
    ))
}

async fn read_more(connection: &mut Connection) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let read = connection.stream.read(&mut chunk).await?;
    connection.buffer.extend_from_slice(&chunk[..read]);
    Ok(read)
}

/// Index just past `\r\n\r\n`.
fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

struct Head {
    status: u16,
    content_length: usize,
    close: bool,
}

fn parse_head(head: &[u8]) -> Result<Head, CallError> {
    let head = std::str::from_utf8(head).map_err(|_| CallError::Malformed("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or(CallError::Malformed("status line"))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(CallError::Malformed("transfer-encoding"));
        }
    }
    let content_length = content_length.ok_or(CallError::Malformed("no content-length"))?;
    if content_length > MAX_BODY_BYTES {
        return Err(CallError::Malformed("body too large"));
    }
    Ok(Head {
        status,
        content_length,
        close,
    })
}

/// `POST path` with a body and extra headers, ready to send.
pub fn post(address: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    request
}

/// `GET path`, ready to send.
pub fn get(address: SocketAddr, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").into_bytes()
}
