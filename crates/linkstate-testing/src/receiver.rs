//! A webhook receiver on 127.0.0.1:0 that records every request and answers from a script:
//! a status (with headers), a hang, or an endless body; 200 once the script is used up. It can
//! stop listening for a while, so that connections are refused.
//! A small HTTP/1.1 server of its own, so a test decides exactly what reaches the sender.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status, with these headers.
    Status(u16, Vec<(&'static str, String)>),
    /// No answer for this long (longer than the sender's timeout: a timeout).
    Hang(Duration),
    /// This status and a body announced as 100 MiB, of which 128 KiB are sent before the
    /// receiver stops sending (a sender reading it all would wait for its timeout).
    Endless(u16),
}

/// A request as the receiver got it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The exact body bytes.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Its URL (`http://127.0.0.1:port/hook`).
    pub url: String,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    /// Whether it listens: while not, connections to its port are refused.
    listening: Arc<watch::Sender<bool>>,
}

impl Receiver {
    /// A receiver answering `script` in order, then 200.
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (listening, mut told) = watch::channel(true);
        let receiver = Receiver {
            url: format!("http://{addr}/hook"),
            state: Arc::new(Mutex::new(State {
                script: script.into(),
                received: Vec::new(),
            })),
            arrived: Arc::new(Notify::new()),
            listening: Arc::new(listening),
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                let Some(open) = &listener else {
                    if told.changed().await.is_err() {
                        return;
                    }
                    if *told.borrow() {
                        // The same port again (SO_REUSEADDR is set on Unix).
                        listener = Some(TcpListener::bind(addr).await.unwrap());
                    }
                    continue;
                };
                let close = tokio::select! {
                    accepted = open.accept() => {
                        let Ok((stream, _)) = accepted else { return };
                        let serving = serving.clone();
                        tokio::spawn(async move { serving.serve(stream).await });
                        false
                    }
                    changed = told.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        !*told.borrow()
                    }
                };
                if close {
                    listener = None;
                }
            }
        });
        receiver
    }

    /// Stops listening: connections are refused until [`Receiver::reopen`].
    pub fn refuse(&self) {
        self.listening.send_replace(false);
    }

    /// Listens again on the same port.
    pub fn reopen(&self) {
        self.listening.send_replace(true);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests arrived (at most `limit`); answers them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() >= deadline {
                return received;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), self.arrived.notified()).await;
        }
    }

    async fn serve(&self, mut stream: TcpStream) {
        let Some(received) = read_request(&mut stream).await else {
            return;
        };
        let reply = {
            let mut state = self.state.lock().unwrap();
            state.received.push(received);
            state.script.pop_front()
        };
        self.arrived.notify_waiters();
        let (status, headers) = match reply {
            None => (200, Vec::new()),
            Some(Reply::Status(status, headers)) => (status, headers),
            Some(Reply::Hang(duration)) => {
                tokio::time::sleep(duration).await;
                return;
            }
            Some(Reply::Endless(status)) => {
                let head = format!("HTTP/1.1 {status} Status\r\ncontent-length: 104857600\r\n\r\n");
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&vec![b'x'; 128 * 1024]).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        };
        let mut answer =
            format!("HTTP/1.1 {status} Status\r\ncontent-length: 2\r\nconnection: close\r\n");
        for (name, value) in headers {
            answer.push_str(&format!("{name}: {value}\r\n"));
        }
        answer.push_str("\r\nok");
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Reads one request: its head, then `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        path,
        headers,
        body,
        at: Instant::now(),
    })
}
