//! Peer links: one long-lived bidirectional gRPC stream per pair of nodes, dialed with backoff, kept alive by
//! heartbeats. Either side may send any frame once the two `Hello`s are exchanged.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_stream::Stream;
use tonic::Streaming;
use tonic::transport::Endpoint;

use super::envelope::{self, Envelope};
use super::layout::split_host_port;
use super::node::Node;
use super::pool::PublishError;
use super::proto::{H2_WINDOW_BYTES, MAX_FRAME_BYTES, pb};
use super::role::Role;

/// Frames queued towards one peer before sends report the queue as full.
pub const LINK_QUEUE: usize = 8192;
/// At most this many messages, and about this many encoded bytes, go into one `Messages` frame. Frames of ~60 kB
/// (~550 small events) cost less per event than frames that fit tonic's 8 kB decode buffer, although the buffer then
/// grows: 2.4 -> 1.6 us CPU per relayed event in the cluster bench (docs/BENCHMARKS.md).
const BATCH_MESSAGES: usize = 4096;
const BATCH_BYTES: usize = 60 << 10;

/// What a link sends: a frame, or event messages the link packs with the ones queued around them.
#[derive(Debug)]
pub enum Outgoing {
    /// Boxed: control frames are rare and large, messages many and small, and every item is moved through the queue.
    Frame(Box<pb::Frame>),
    Message(Envelope),
    /// Messages for this peer from one incoming frame (what the manager relays).
    Messages(Vec<Envelope>),
}

impl From<pb::Frame> for Outgoing {
    fn from(f: pb::Frame) -> Outgoing {
        Outgoing::Frame(Box::new(f))
    }
}

impl From<Envelope> for Outgoing {
    fn from(e: Envelope) -> Outgoing {
        Outgoing::Message(e)
    }
}

impl From<Vec<Envelope>> for Outgoing {
    fn from(v: Vec<Envelope>) -> Outgoing {
        Outgoing::Messages(v)
    }
}

/// The sending end of a link's queue.
pub type LinkSender = mpsc::Sender<Outgoing>;
/// Frames a link looks past for a newer view.
const VIEW_LOOKAHEAD: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One live link to a peer.
pub struct Link {
    /// Unique per link, so a stale link closing never unregisters its replacement.
    pub id: u64,
    pub name: String,
    pub role: Role,
    pub advertise: String,
    /// The peer's hello (its subscriptions and the newest epoch it had seen).
    pub hello: pb::Hello,
    tx: LinkSender,
    last_heard_ms: AtomicU64,
    /// What the peer reported in its last heartbeat.
    pub stats: Mutex<pb::NodeStats>,
    closer: Notify,
}

impl Link {
    pub fn new(id: u64, hello: pb::Hello, role: Role, tx: LinkSender, now_ms: u64) -> Link {
        Link {
            id,
            name: hello.name.clone(),
            role,
            advertise: hello.advertise.clone(),
            hello,
            tx,
            last_heard_ms: AtomicU64::new(now_ms),
            stats: Mutex::new(pb::NodeStats::default()),
            closer: Notify::new(),
        }
    }

    /// Queues a frame or messages without waiting.
    pub fn try_send(&self, item: impl Into<Outgoing>) -> Result<(), PublishError> {
        self.tx.try_send(item.into()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PublishError::QueueFull(self.name.clone()),
            mpsc::error::TrySendError::Closed(_) => PublishError::Unreachable(self.name.clone()),
        })
    }

    /// Queues a frame, waiting up to `wait` for room.
    pub async fn send_timeout(&self, frame: pb::Frame, wait: Duration) -> Result<(), PublishError> {
        self.tx.send_timeout(frame.into(), wait).await.map_err(|e| match e {
            mpsc::error::SendTimeoutError::Timeout(_) => PublishError::QueueFull(self.name.clone()),
            mpsc::error::SendTimeoutError::Closed(_) => PublishError::Unreachable(self.name.clone()),
        })
    }

    pub fn sender(&self) -> LinkSender {
        self.tx.clone()
    }

    /// Frames waiting to go out.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_heard_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_heard_ms(&self) -> u64 {
        self.last_heard_ms.load(Ordering::Relaxed)
    }

    /// Ends the link (its task unregisters it and reports node_down).
    pub fn close(&self) {
        self.closer.notify_one();
    }
}

/// The frames a link sends, in queue order, with two savings for a busy link (nothing ever waits for them):
/// messages queued together leave in one `Messages` frame, amortising the per-frame work (gRPC framing, decoding,
/// the reader's loop) over many; and a membership view with a newer view queued behind it is not sent at all (the
/// receiver would install the newer one anyway), which keeps a manager from pushing every intermediate view to
/// every node while many nodes join at once.
pub struct Outbound {
    rx: mpsc::Receiver<Outgoing>,
    /// Items taken from the queue to look past, sent next, in order.
    held: VecDeque<Outgoing>,
    /// A lone message was held back for one turn of the scheduler (see `poll_next`).
    deferred: bool,
}

impl Outbound {
    pub fn new(rx: mpsc::Receiver<Outgoing>) -> Outbound {
        Outbound { rx, held: VecDeque::new(), deferred: false }
    }

    /// The next item that is already queued, if any.
    fn ready(&mut self) -> Option<Outgoing> {
        self.held.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// `batch` and the messages queued right behind it, in one frame.
    fn pack(&mut self, mut batch: Vec<Envelope>) -> pb::Frame {
        let mut bytes: usize = batch.iter().map(Envelope::wire_len).sum();
        while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            match self.ready() {
                Some(Outgoing::Message(m)) => {
                    bytes += m.wire_len();
                    batch.push(m);
                }
                Some(Outgoing::Messages(more)) => {
                    bytes += more.iter().map(Envelope::wire_len).sum::<usize>();
                    batch.extend(more);
                }
                Some(other) => {
                    self.held.push_front(other);
                    break;
                }
                None => break,
            }
        }
        frame(envelope::to_wire(batch))
    }

    /// Whether a newer view is queued within the next few items.
    fn view_superseded(&mut self) -> bool {
        while self.held.len() < VIEW_LOOKAHEAD {
            match self.rx.try_recv() {
                Ok(f) => self.held.push_back(f),
                Err(_) => break,
            }
        }
        self.held.iter().any(|f| matches!(f, Outgoing::Frame(f) if matches!(f.body, Some(pb::frame::Body::View(_)))))
    }
}

impl Stream for Outbound {
    type Item = pb::Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<pb::Frame>> {
        loop {
            let next = match self.held.pop_front() {
                Some(f) => f,
                None => match self.rx.poll_recv(cx) {
                    Poll::Ready(Some(f)) => f,
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                },
            };
            // A message with nothing queued behind it waits one turn of the scheduler (microseconds, no timer): a
            // publisher sending a stream of events then fills a frame meanwhile instead of paying a wake-up and a
            // socket write for each event.
            if matches!(next, Outgoing::Message(_)) && !self.deferred && self.held.is_empty() && self.rx.is_empty() {
                self.deferred = true;
                self.held.push_front(next);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.deferred = false;
            return Poll::Ready(Some(match next {
                Outgoing::Message(m) => self.pack(vec![m]),
                Outgoing::Messages(batch) if batch.is_empty() => continue,
                Outgoing::Messages(batch) => self.pack(batch),
                Outgoing::Frame(f) if matches!(f.body, Some(pb::frame::Body::View(_))) && self.view_superseded() => {
                    continue;
                }
                Outgoing::Frame(f) => *f,
            }));
        }
    }
}

pub fn frame(body: pb::frame::Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

pub fn error_frame(code: u32, message: impl Into<String>) -> pb::Frame {
    frame(pb::frame::Body::Error(pb::Error { code, message: message.into() }))
}

/// Reads frames from a link until it ends, is closed, or the node shuts down.
pub async fn run_link(node: Node, link: std::sync::Arc<Link>, mut inbound: Streaming<pb::Frame>) {
    node.register_link(&link);
    let mut shutdown = node.shutdown_signal();
    loop {
        tokio::select! {
            next = inbound.message() => match next {
                Ok(Some(f)) => {
                    link.touch(node.now_ms());
                    node.on_frame(&link, f);
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(peer = %link.name, %status, "link ended");
                    break;
                }
            },
            () = link.closer.notified() => break,
            _ = shutdown.changed() => break,
        }
    }
    node.unregister_link(&link);
}

/// Keeps a link to `name` at `addr` up: dials, runs the link, and redials with exponential backoff until the node
/// shuts down or the peer is no longer one to dial.
pub async fn dial_loop(node: Node, name: String, addr: String) {
    let mut backoff = BACKOFF_START;
    let mut linked_before = false;
    while node.should_dial(&name) {
        match dial_once(&node, &name, &addr).await {
            Ok((link, inbound)) => {
                backoff = BACKOFF_START;
                if linked_before {
                    node.metrics().peer_reconnects.inc();
                }
                linked_before = true;
                run_link(node.clone(), link, inbound).await;
            }
            Err(e) => tracing::debug!(peer = %name, %addr, "dial failed: {e:#}"),
        }
        if !node.should_dial(&name) {
            break;
        }
        // Jitter spreads the reconnects of many nodes after a manager restart.
        let jitter = Duration::from_millis(u64::from(node.now_ms() as u32 % 100));
        let mut shutdown = node.shutdown_signal();
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            _ = shutdown.changed() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    node.dial_ended(&name);
}

/// An endpoint with the cluster's transport settings (large HTTP/2 windows, TLS when configured).
pub fn endpoint(addr: &str, tls: Option<&super::tls::TlsSettings>) -> anyhow::Result<Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .initial_stream_window_size(H2_WINDOW_BYTES)
        .initial_connection_window_size(H2_WINDOW_BYTES)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        let (host, _) = split_host_port(addr).ok_or_else(|| anyhow::anyhow!("bad address {addr}"))?;
        ep = ep.tls_config(tls.client(&host))?;
    }
    Ok(ep)
}

async fn dial_once(
    node: &Node,
    name: &str,
    addr: &str,
) -> anyhow::Result<(std::sync::Arc<Link>, Streaming<pb::Frame>)> {
    let channel = endpoint(addr, node.tls())?.connect().await?;
    let mut client = pb::cluster_client::ClusterClient::new(channel)
        .max_decoding_message_size(MAX_FRAME_BYTES)
        .max_encoding_message_size(MAX_FRAME_BYTES);
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    tx.try_send(node.hello_frame().into())?;
    let response = tokio::time::timeout(HANDSHAKE_TIMEOUT, client.link(Outbound::new(rx))).await??;
    let mut inbound = response.into_inner();
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, inbound.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("{addr} closed the link before its hello"))?;
    let Some(pb::frame::Body::Hello(hello)) = first.body else {
        anyhow::bail!("{addr} did not answer with a hello");
    };
    if hello.name != name {
        anyhow::bail!("{addr} is '{}', not '{name}'", hello.name);
    }
    let role = node.check_hello(&hello).map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let link = std::sync::Arc::new(Link::new(node.next_link_id(), hello, role, tx, node.now_ms()));
    Ok((link, inbound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    fn message(n: u64) -> Outgoing {
        let event = envelope::encode_event(crate::cluster::Event::new("Test::n", vec![crate::cluster::Data::Count(n)]));
        Outgoing::Message(Envelope::one(envelope::Header::new("t", "w"), None, event))
    }

    fn view(epoch: u64) -> Outgoing {
        frame(pb::frame::Body::View(pb::View { epoch, members: vec![], ready: true })).into()
    }

    /// What a frame is, for comparing sequences: ("events", n) for a frame of n events.
    fn kind(f: &pb::Frame) -> (&'static str, u64) {
        use pb::frame::Body;
        let events = |m: &pb::Message| u64::from(m.event_count.max(1));
        match &f.body {
            Some(Body::Message(m)) => ("events", events(m)),
            Some(Body::Messages(b)) => ("events", b.messages.iter().map(events).sum()),
            Some(Body::View(v)) => ("view", v.epoch),
            Some(Body::Heartbeat(_)) => ("heartbeat", 0),
            _ => ("other", 0),
        }
    }

    #[tokio::test]
    async fn queued_messages_are_packed_and_stale_views_skipped_in_order() {
        let (tx, rx) = mpsc::channel(64);
        let heartbeat = frame(pb::frame::Body::Heartbeat(pb::Heartbeat::default())).into();
        for f in [message(1), message(2), message(3), heartbeat, view(1), message(4), view(2), message(5)] {
            tx.try_send(f).unwrap();
        }
        drop(tx);
        let out: Vec<pb::Frame> = Outbound::new(rx).collect().await;
        let kinds: Vec<_> = out.iter().map(kind).collect();
        assert_eq!(kinds, [("events", 3), ("heartbeat", 0), ("events", 1), ("view", 2), ("events", 1)]);
        let Some(pb::frame::Body::Message(m)) = out[0].body.clone() else { unreachable!("one run") };
        let mut first = Vec::new();
        envelope::from_wire(vec![m], |e| {
            e.events.for_each(|b| first.push(envelope::decode_event(b).unwrap().args[0].clone())).unwrap()
        })
        .unwrap();
        assert_eq!(first, [1, 2, 3].map(crate::cluster::Data::Count));
    }

    #[tokio::test]
    async fn an_idle_link_sends_each_message_alone() {
        let (tx, rx) = mpsc::channel(64);
        let mut out = Outbound::new(rx);
        tx.try_send(message(1)).unwrap();
        assert_eq!(kind(&out.next().await.unwrap()), ("events", 1));
        tx.try_send(message(2)).unwrap();
        assert_eq!(kind(&out.next().await.unwrap()), ("events", 1));
    }
}
