//! A TCP relay on loopback that slows what clients send to a server, so that a test can stop
//! the real server while a large upload is on the wire (on loopback a whole layer passes in
//! well under a second, too fast to interrupt at a chosen point). The relay only paces bytes;
//! everything the client sees (a server that dies mid-request) is the real server's doing:
//! when the server's side closes, the client's connection is closed too.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// Bytes moved per read/write; small enough that the pacing stays smooth.
const CHUNK: usize = 64 * 1024;
/// How often the accept loop checks whether the relay was dropped.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// Bound on connections one relay serves (a test makes a few dozen at most).
const MAX_CONNECTIONS: usize = 10_000;

/// A listening relay to `upstream`; dropped, it stops accepting.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Client-to-server bytes per second; 0 is unlimited.
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Relay a free loopback port to `upstream`, pacing uploads to `rate` bytes per second
    /// (0: unlimited). Each client connection opens its own connection to `upstream`; when
    /// that fails (the server is down) the client's connection is closed at once.
    pub fn start(upstream: SocketAddr, rate: u64) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        listener.set_nonblocking(true).expect("nonblocking relay");
        let addr = listener.local_addr().expect("relay addr");
        let rate = Arc::new(AtomicU64::new(rate));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (rate.clone(), stop.clone());
        thread::spawn(move || accept_loop(listener, upstream, r, s));
        Relay { addr, rate, stop }
    }

    /// `host:port` as image references and `PIER_SERVER` name it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Change the upload pace for connections already open and new ones (0: unlimited).
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, rate: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut served = 0;
    while !stop.load(Ordering::SeqCst) && served < MAX_CONNECTIONS {
        match listener.accept() {
            Ok((client, _)) => {
                served += 1;
                let rate = rate.clone();
                thread::spawn(move || relay_one(client, upstream, rate));
            }
            // Nothing waiting (non-blocking), or a failed accept: look again shortly.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

fn relay_one(client: TcpStream, upstream: SocketAddr, rate: Arc<AtomicU64>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_rx), Ok(server_tx)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || pump(client_rx, server_tx, Some(rate)));
    pump(server, client, None);
    let _ = up.join();
}

/// Copy `from` → `to` until either side ends, paced to `rate` when given; then close both
/// sockets entirely so the other direction's pump ends too.
fn pump(mut from: TcpStream, mut to: TcpStream, rate: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        // Each chunk waits its own time: no credit from idle moments, so a burst after a
        // pause still goes at the pace.
        let bps = rate.as_ref().map_or(0, |r| r.load(Ordering::SeqCst));
        if bps > 0 {
            thread::sleep(Duration::from_secs_f64(n as f64 / bps as f64));
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
