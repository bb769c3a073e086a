//! A scripted HTTP/1.1 server on 127.0.0.1 that stands in for a registry (or
//! for the storage a registry redirects blob downloads to) where a real
//! docker-registry cannot be made to misbehave: it simulates throttling
//! (`429` with `Retry-After`), redirects to another host, and whatever other
//! answer a test scripts, and records every request it sees (when, its
//! request line, its `Authorization` header).

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub line: String,
    pub authorization: Option<String>,
}

/// An answer: status line (`"200 OK"`), headers, body.
pub type Answer = (String, Vec<(String, String)>, Vec<u8>);

/// The script: (request line, requests seen so far, this one last) → answer.
type Script = dyn Fn(&str, &[Seen]) -> Answer + Send + Sync;

/// Starts the server on a free port; `answer` scripts it. Returns the port
/// and the requests seen. It serves (keep-alive connections too) until the
/// test binary ends.
pub fn fake_server(
    answer: impl Fn(&str, &[Seen]) -> Answer + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer: Arc<Script> = Arc::new(answer);
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (seen, answer) = (s.clone(), answer.clone());
            std::thread::spawn(move || serve(conn, &seen, &*answer));
        }
    });
    (port, seen)
}

/// A request: its line, `Authorization` header; the body is read and dropped.
fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, Option<String>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 || !line.contains("HTTP/1.") {
        return None;
    }
    let mut auth = None;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        match k.to_ascii_lowercase().as_str() {
            "authorization" => auth = Some(v.trim().to_string()),
            "content-length" => len = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some((line.trim_end().to_string(), auth))
}

/// Answers the requests of one connection until it closes.
fn serve(mut conn: TcpStream, seen: &Mutex<Vec<Seen>>, answer: &Script) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    while let Some((line, authorization)) = read_request(&mut reader) {
        let (status, headers, body) = {
            let mut seen = seen.lock().unwrap();
            seen.push(Seen {
                at: Instant::now(),
                line: line.clone(),
                authorization,
            });
            answer(&line, &seen)
        };
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if conn.write_all(head.as_bytes()).is_err()
            || (!line.starts_with("HEAD ") && conn.write_all(&body).is_err())
        {
            return;
        }
    }
}
