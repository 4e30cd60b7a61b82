//! `shape`: a network between a tool and a registry, in user space (the
//! kernel here has no netem).
//!
//! A TCP proxy from `--listen` to `--upstream`. Each accepted connection gets
//! its own upstream connection and two pipes, one per direction. A pipe reads
//! whatever the sender wrote, stamps it with its arrival time and queues it;
//! its writer releases each chunk at arrival + the one-way delay. The queue is
//! what keeps a connection from being serialised on its own latency: data
//! sent while earlier data is still "on the wire" is read at once and is
//! released its own delay later, as on a real link. A pipe holds at most
//! `window` bytes (a socket buffer, or a TCP window); beyond that it stops
//! reading, and the sender's kernel pushes back.
//!
//! Options: `--connect-rtt` charges one round trip (2 × delay) to each new
//! connection before its first byte moves, as a TCP handshake would; a rate
//! cap is a token bucket per direction shared by all the shaper's
//! connections (a link to the registry, not a cap per connection).
//!
//! The proxy runs on one thread (a current-thread runtime), its alarms on a
//! second (`Alarms`): tokio's timer rounds every deadline up to a whole
//! millisecond tick and waits in whole milliseconds, which made a 20 ms RTT
//! 22.4 ms and a 5 ms one about 7; an OS sleep on a thread of its own fires
//! within tens of microseconds. (A chunk held back by the rate cap waits on
//! tokio's timer: there the rate counts, not the instant.) The runner reads the process's CPU from
//! `/proc`. On SIGTERM the shaper prints one JSON line of counters to stdout
//! (connections, bytes each way) and exits.
//!
//! Written by hand, not taken from a crate: the delay queue, the alarms and
//! a shared bucket are about 200 lines on tokio and std, and no kept crate
//! does a per-chunk delay on a TCP proxy.

use anyhow::{Context, Result};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// The largest chunk one read takes off a socket (a u32: it counts permits).
const CHUNK: u32 = 64 * 1024;

/// What the shaper puts between the tool and the registry.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Where the tool connects.
    pub listen: SocketAddr,
    /// The registry.
    pub upstream: SocketAddr,
    /// One-way delay, applied to each direction (RTT = 2 × delay).
    pub delay: Duration,
    /// Charge one round trip to each new connection before its first byte.
    pub connect_rtt: bool,
    /// Bytes per second each way, shared by all connections; `None`: no cap.
    pub rate: Option<f64>,
    /// The most bytes one direction of one connection holds in flight.
    pub window: usize,
}

/// What went through, printed on SIGTERM.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    /// Tool → registry.
    bytes_up: AtomicU64,
    /// Registry → tool.
    bytes_down: AtomicU64,
}

/// Wakes tasks at instants, from a thread of its own that sleeps on the OS
/// (precise to tens of microseconds), for every wait of the shaper.
#[derive(Clone)]
struct Alarms {
    tx: std_mpsc::Sender<Alarm>,
}

struct Alarm {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Alarm {
    fn eq(&self, other: &Alarm) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Alarm {}
impl PartialOrd for Alarm {
    fn partial_cmp(&self, other: &Alarm) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Alarm {
    fn cmp(&self, other: &Alarm) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Alarms {
    fn start() -> Alarms {
        let (tx, rx) = std_mpsc::channel::<Alarm>();
        std::thread::spawn(move || {
            let mut due: BinaryHeap<Reverse<Alarm>> = BinaryHeap::new();
            loop {
                let now = Instant::now();
                while due.peek().is_some_and(|a| a.0.at <= now) {
                    let _ = due.pop().expect("peeked").0.wake.send(());
                }
                let next = match due.peek() {
                    None => rx.recv().map_err(|_| ()),
                    Some(a) => match rx.recv_timeout(a.0.at - now) {
                        Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
                        r => r.map_err(|_| ()),
                    },
                };
                let Ok(alarm) = next else { return };
                due.push(Reverse(alarm));
            }
        });
        Alarms { tx }
    }

    /// Returns at `at` (at once if it has passed).
    async fn until(&self, at: Instant) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        if at <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Alarm { at, seq, wake }).is_ok() {
            let _ = woken.await;
        }
    }
}

/// A rate cap shared by connections, as a token bucket in its virtual
/// scheduling form (GCRA): `tat` is when the link will have sent all it was
/// given; a chunk ready at `r` goes at `max(r, tat - burst)` and moves `tat`
/// on by its own transmission time. Asking when a chunk may go is one lock
/// and no wait, so a chunk waits on one alarm for its delay and the cap both.
struct Bucket {
    secs_per_byte: f64,
    burst: Duration,
    tat: Mutex<Instant>,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            secs_per_byte: 1.0 / rate,
            // 10 ms of traffic, and at least one chunk.
            burst: Duration::from_secs_f64((f64::from(CHUNK) / rate).max(0.01)),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// When `n` bytes ready at `ready` may go.
    fn release(&self, ready: Instant, n: u32) -> Instant {
        let mut tat = self.tat.lock().expect("bucket lock");
        let at = tat.checked_sub(self.burst).map_or(ready, |t| t.max(ready));
        *tat = (*tat).max(at) + Duration::from_secs_f64(f64::from(n) * self.secs_per_byte);
        at
    }
}

enum Item {
    Data(Instant, Bytes),
    End(Instant),
}

/// Serves until SIGTERM; prints the bound address on stdout first (so that
/// `--listen 127.0.0.1:0` can be used), the counters last.
pub async fn serve(shape: Shape) -> Result<()> {
    let listener = TcpListener::bind(shape.listen)
        .await
        .with_context(|| format!("listening on {}", shape.listen))?;
    println!("{}", listener.local_addr()?);
    let shape = Arc::new(shape);
    let counters = Arc::new(Counters::default());
    let up = shape.rate.map(|r| Arc::new(Bucket::new(r)));
    let down = shape.rate.map(|r| Arc::new(Bucket::new(r)));
    let alarms = Alarms::start();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let link = Link {
                    shape: shape.clone(),
                    counters: counters.clone(),
                    alarms: alarms.clone(),
                };
                tokio::spawn(connection(client, Instant::now(), link, up.clone(), down.clone()));
            }
            _ = term.recv() => break,
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "connections": counters.connections.load(Ordering::Relaxed),
            "bytes_up": counters.bytes_up.load(Ordering::Relaxed),
            "bytes_down": counters.bytes_down.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

/// What every connection of one shaper shares.
struct Link {
    shape: Arc<Shape>,
    counters: Arc<Counters>,
    alarms: Alarms,
}

async fn connection(
    client: TcpStream,
    accepted: Instant,
    link: Link,
    up: Option<Arc<Bucket>>,
    down: Option<Arc<Bucket>>,
) {
    let shape = &link.shape;
    let upstream = match TcpStream::connect(shape.upstream).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("shape: connecting to {}: {e}", shape.upstream);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if shape.connect_rtt {
        link.alarms.until(accepted + shape.delay * 2).await;
    }
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::join!(
        pipe(cr, uw, &link, up, &link.counters.bytes_up),
        pipe(ur, cw, &link, down, &link.counters.bytes_down),
    );
}

/// One direction of one connection: read, stamp, queue; release each chunk
/// at its arrival + delay, after the bucket lets it through.
async fn pipe<R, W>(mut r: R, mut w: W, link: &Link, bucket: Option<Arc<Bucket>>, count: &AtomicU64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (shape, alarms) = (&*link.shape, &link.alarms);
    if shape.delay.is_zero() && bucket.is_none() {
        // A plain copy, counted chunk by chunk as it is written (not as
        // tokio::io::copy does, at the end): the counters printed on SIGTERM
        // must hold every byte a tool that has exited received, though this
        // connection's other side may not have closed yet.
        let mut buf = vec![0u8; CHUNK as usize];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                break;
            }
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = w.shutdown().await;
        return;
    }
    let delay = shape.delay;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let window = Semaphore::new(shape.window.max(CHUNK as usize));
    let room = &window;
    let reader = async move {
        let mut buf = vec![0u8; CHUNK as usize];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            let Ok(permit) = room.acquire_many(u32::try_from(n).expect("a chunk")).await else {
                return; // the writer is gone
            };
            permit.forget();
            if tx.send(Item::Data(Instant::now(), chunk)).is_err() {
                return;
            }
        }
        let _ = tx.send(Item::End(Instant::now()));
    };
    let writer = async move {
        while let Some(item) = rx.recv().await {
            match item {
                Item::Data(at, chunk) => {
                    let n = u32::try_from(chunk.len()).expect("at most a chunk");
                    let due = at + delay;
                    match bucket.as_ref().map(|b| b.release(due, n)) {
                        // Held by the cap: the rate matters, not the instant
                        // (a late wake leaves the bucket's time unspent), and
                        // tokio's timer wakes this thread without a switch to
                        // the alarms' thread and back for each chunk.
                        Some(go) if go > due => tokio::time::sleep_until(go.into()).await,
                        _ => alarms.until(due).await,
                    }
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                    count.fetch_add(u64::from(n), Ordering::Relaxed);
                    room.add_permits(chunk.len());
                }
                Item::End(at) => {
                    alarms.until(at + delay).await;
                    break;
                }
            }
        }
        let _ = w.shutdown().await;
        // Unblocks a reader waiting for room once nothing will be written.
        room.close();
        rx.close();
    };
    tokio::join!(reader, writer);
}
