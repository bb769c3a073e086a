//! A TCP forwarder on 127.0.0.1 in front of a registry that simulates the
//! registry dying in the middle of an upload: once a given number of bytes
//! has gone upstream it calls a trigger once (where the test kills the
//! registry), and it counts the connections it could not forward because
//! nothing listened upstream (the client retrying while the registry is
//! down).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Proxy {
    pub port: u16,
    fired: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards a free port to 127.0.0.1:`upstream`; calls `on_trigger`
    /// (once, on the forwarding thread, before forwarding more) when
    /// `trigger` bytes have gone upstream. Serves until the test binary ends.
    pub fn start(
        upstream: u16,
        trigger: u64,
        on_trigger: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let on_trigger = Arc::new(on_trigger);
        let (f, r) = (fired.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    r.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_r, mut c_w) = (server, client);
                let (sent, fired, on_trigger) = (sent.clone(), f.clone(), on_trigger.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match c_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if s_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if total >= trigger && !fired.swap(true, Ordering::SeqCst) {
                            on_trigger();
                        }
                    }
                    let _ = s_w.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_r, &mut c_w);
                    let _ = c_w.shutdown(Shutdown::Both);
                });
            }
        });
        Self {
            port,
            fired,
            refused,
        }
    }

    /// Whether the trigger has been called.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Connections refused upstream so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}
