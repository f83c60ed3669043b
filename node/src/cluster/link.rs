//! Peer links: one long-lived bidirectional gRPC stream per pair of nodes, dialed with backoff, kept alive by
//! heartbeats. Either side may send any frame once the two `Hello`s are exchanged.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_stream::Stream;
use tonic::Streaming;
use tonic::transport::Endpoint;

use super::envelope::{self, Envelope, EventRef, Header, OpenRun};
use super::layout::split_host_port;
use super::node::Node;
use super::pool::PublishError;
use super::proto::{H2_WINDOW_BYTES, MAX_FRAME_BYTES, pb};
use super::role::Role;

/// Frames queued towards one peer before sends report the queue as full.
pub const LINK_QUEUE: usize = 8192;
/// Encoded bytes of messages queued towards one peer before sends report the queue as full, beside the bound in
/// items: a manager queues what it relays as whole runs of ~60 kB, so the item bound alone let a target slower than
/// its source hold up to ~480 MB of relayed events in the manager (in the relay bench, 100-150 MB were held, and the
/// page faults of that growth cost a third of the manager's time). Twice the HTTP/2 window keeps a link busy while
/// its peer catches up.
pub const LINK_QUEUE_BYTES: usize = 2 * H2_WINDOW_BYTES as usize;
/// The byte bound is kept in permits of this many bytes.
const ROOM_UNIT: usize = 1024;
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
    /// The place in the queue of the next run of events in the link's [`Runs`]: events published after it was
    /// queued join that run until something else is queued behind it.
    Run,
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

/// Runs of events gathered at most per link (each up to a frame's worth of bytes) before a publish is refused as
/// `QueueFull`: ~3.8 MB, some 35,000 small events.
const QUEUED_RUNS: usize = 64;

/// Runs of events a link is gathering, oldest first. Each has an [`Outgoing::Run`] marker in the link's queue, in the
/// same order, so events leave in the order they were published relative to everything else queued. The last run
/// takes more events while nothing has been queued behind its marker.
#[derive(Debug, Default)]
pub struct Runs {
    runs: VecDeque<OpenRun>,
    last_open: bool,
    /// A run filled up and none sent since was small: the link is busy, and a new run starts with a frame's worth of
    /// room rather than growing to it (each growth copies the run).
    busy: bool,
}

/// Room a run starts with on a link that is not busy.
const RUN_START_BYTES: usize = 1024;

/// The sending end of a link's queue: frames and messages through the channel, events into the link's runs.
#[derive(Debug, Clone)]
pub struct LinkSender {
    tx: mpsc::Sender<Outgoing>,
    runs: Arc<Mutex<Runs>>,
    /// Room for messages' bytes ([`LINK_QUEUE_BYTES`]), taken by a send and given back when the item leaves.
    room: Arc<Semaphore>,
}

/// A link's queue: the sender that nodes publish into and the stream its gRPC call sends from.
pub fn queue() -> (LinkSender, Outbound) {
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    let runs = Arc::new(Mutex::new(Runs::default()));
    let room = Arc::new(Semaphore::new(LINK_QUEUE_BYTES / ROOM_UNIT));
    (LinkSender { tx, runs: Arc::clone(&runs), room: Arc::clone(&room) }, Outbound::new(rx, runs, room))
}

/// The room an item takes in the queue's byte bound: messages by their encoded size (one at least, and never more
/// than the whole bound, so any item fits an empty queue); frames and run markers none (frames are control traffic
/// and log batches, which their shipper bounds; runs have their own bound, [`QUEUED_RUNS`]).
fn room_taken(item: &Outgoing) -> u32 {
    let bytes = match item {
        Outgoing::Message(m) => m.wire_len(),
        Outgoing::Messages(v) => v.iter().map(Envelope::wire_len).sum(),
        Outgoing::Frame(_) | Outgoing::Run => return 0,
    };
    bytes.div_ceil(ROOM_UNIT).clamp(1, LINK_QUEUE_BYTES / ROOM_UNIT) as u32
}

fn lock(runs: &Mutex<Runs>) -> MutexGuard<'_, Runs> {
    runs.lock().unwrap_or_else(|e| e.into_inner())
}

impl LinkSender {
    /// Queues a frame or messages without waiting, behind every event published before.
    pub fn try_send(&self, item: impl Into<Outgoing>) -> Result<(), mpsc::error::TrySendError<Outgoing>> {
        let item = item.into();
        let Ok(room) = self.room.try_acquire_many(room_taken(&item)) else {
            return Err(mpsc::error::TrySendError::Full(item));
        };
        let mut runs = lock(&self.runs);
        runs.last_open = false;
        self.tx.try_send(item)?;
        // Given back by the `Outbound` when the item leaves the queue.
        room.forget();
        Ok(())
    }

    /// Appends an event without a pool route to the run for `header`, starting a run when the last one is closed,
    /// has another header or is full.
    pub fn try_send_event(
        &self,
        header: &Arc<Header>,
        event: EventRef<'_>,
    ) -> Result<(), mpsc::error::TrySendError<()>> {
        let mut runs = lock(&self.runs);
        let joins =
            |r: &OpenRun| (Arc::ptr_eq(&r.header, header) || *r.header == **header) && r.wire_len() < BATCH_BYTES;
        let open = runs.last_open;
        match runs.runs.back_mut() {
            Some(run) if open && joins(run) => run.push(event),
            last => {
                if last.is_some_and(|r| r.wire_len() >= BATCH_BYTES) {
                    runs.busy = true;
                }
                if runs.runs.len() >= QUEUED_RUNS {
                    return Err(mpsc::error::TrySendError::Full(()));
                }
                self.tx.try_send(Outgoing::Run).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => mpsc::error::TrySendError::Full(()),
                    mpsc::error::TrySendError::Closed(_) => mpsc::error::TrySendError::Closed(()),
                })?;
                let room = if runs.busy { BATCH_BYTES + RUN_START_BYTES } else { RUN_START_BYTES };
                let mut run = OpenRun::new(Arc::clone(header), room);
                run.push(event);
                runs.runs.push_back(run);
                runs.last_open = true;
            }
        }
        Ok(())
    }

    /// Closes the open run, so events published from now on queue behind whatever is sent next. For the sends that
    /// wait for room: they cannot hold the lock while they wait, so an event published meanwhile may go first, as it
    /// would had it been published a moment earlier.
    fn close_run(&self) {
        lock(&self.runs).last_open = false;
    }

    /// Queues a frame from a thread that may block until there is room (a frame takes no room in the byte bound).
    pub fn blocking_send(&self, frame: pb::Frame) -> Result<(), mpsc::error::SendError<Outgoing>> {
        self.close_run();
        self.tx.blocking_send(frame.into())
    }

    /// Queues a frame or messages, waiting up to `wait` for room.
    pub async fn send_timeout(
        &self,
        item: impl Into<Outgoing>,
        wait: Duration,
    ) -> Result<(), mpsc::error::SendTimeoutError<Outgoing>> {
        use mpsc::error::SendTimeoutError;
        self.close_run();
        let item = item.into();
        let deadline = tokio::time::Instant::now() + wait;
        let room = match tokio::time::timeout_at(deadline, self.room.acquire_many(room_taken(&item))).await {
            Ok(Ok(room)) => room,
            Ok(Err(_closed)) => return Err(SendTimeoutError::Closed(item)),
            Err(_elapsed) => return Err(SendTimeoutError::Timeout(item)),
        };
        self.tx.send_timeout(item, deadline.saturating_duration_since(tokio::time::Instant::now())).await?;
        room.forget();
        Ok(())
    }

    /// Items waiting to go out (a run of events counts once).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}
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
        self.tx.try_send(item).map_err(|e| self.send_error(matches!(e, mpsc::error::TrySendError::Full(_))))
    }

    /// Queues an event without a pool route, gathered with the events published before it to the same header.
    pub fn try_send_event(&self, header: &Arc<Header>, event: EventRef<'_>) -> Result<(), PublishError> {
        self.tx
            .try_send_event(header, event)
            .map_err(|e| self.send_error(matches!(e, mpsc::error::TrySendError::Full(_))))
    }

    /// Queues a frame, waiting up to `wait` for room.
    pub async fn send_timeout(&self, frame: pb::Frame, wait: Duration) -> Result<(), PublishError> {
        self.tx
            .send_timeout(frame, wait)
            .await
            .map_err(|e| self.send_error(matches!(e, mpsc::error::SendTimeoutError::Timeout(_))))
    }

    fn send_error(&self, full: bool) -> PublishError {
        if full { PublishError::QueueFull(self.name.clone()) } else { PublishError::Unreachable(self.name.clone()) }
    }

    pub fn sender(&self) -> LinkSender {
        self.tx.clone()
    }

    /// The link's queue, for callers that want a refused item back.
    pub fn queue(&self) -> &LinkSender {
        &self.tx
    }

    /// Items waiting to go out.
    pub fn queued(&self) -> usize {
        self.tx.queued()
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
    runs: Arc<Mutex<Runs>>,
    /// The queue's byte room, given back as items leave the queue.
    room: Arc<Semaphore>,
    /// Items taken from the queue to look past, sent next, in order.
    held: VecDeque<Outgoing>,
    /// Turns of the scheduler a lone message has been held back for (see `poll_next`).
    deferred: u8,
    /// The size of the open run when it was last held back: a run still growing is worth another turn.
    deferred_run_bytes: usize,
}

/// Turns of the scheduler a lone run that keeps growing may wait before it is sent: a publisher that is not
/// backed up fills a run over a few turns, and each frame sent costs the link's thread and the receiver's about as
/// much as the events in a small run (relay bench: per-event CPU of the link threads rose when runs went out small).
const MAX_RUN_DEFERRALS: u8 = 4;

/// Whether a lone run held back `turns` times already waits once more: while it grew since the last turn
/// (`bytes_before` to `bytes_now`) and is still under a quarter of a frame, up to [`MAX_RUN_DEFERRALS`] turns.
fn run_worth_another_turn(turns: u8, bytes_before: usize, bytes_now: usize) -> bool {
    turns < MAX_RUN_DEFERRALS && bytes_now > bytes_before && bytes_now < BATCH_BYTES / 4
}

impl Outbound {
    fn new(rx: mpsc::Receiver<Outgoing>, runs: Arc<Mutex<Runs>>, room: Arc<Semaphore>) -> Outbound {
        Outbound { rx, runs, room, held: VecDeque::new(), deferred: 0, deferred_run_bytes: 0 }
    }

    /// An item that left the queue: its room is free again.
    fn left(&self, item: Outgoing) -> Outgoing {
        self.room.add_permits(room_taken(&item) as usize);
        item
    }

    /// The next item taken from the queue if one is there.
    fn try_recv(&mut self) -> Option<Outgoing> {
        self.rx.try_recv().ok().map(|item| self.left(item))
    }

    /// The next item that is already queued, if any.
    fn ready(&mut self) -> Option<Outgoing> {
        self.held.pop_front().or_else(|| self.try_recv())
    }

    /// The run whose marker was just taken from the queue (the oldest); it takes no more events.
    fn take_run(&self) -> Option<Envelope> {
        let mut runs = lock(&self.runs);
        let run = runs.runs.pop_front();
        if runs.runs.is_empty() {
            runs.last_open = false;
        }
        if run.as_ref().is_some_and(|r| r.wire_len() < BATCH_BYTES / 4) {
            runs.busy = false;
        }
        run.map(OpenRun::into_envelope)
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
                Some(Outgoing::Run) => {
                    if let Some(run) = self.take_run() {
                        bytes += run.wire_len();
                        batch.push(run);
                    }
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

    /// The size of the oldest run, still open to publishers while its marker waits here.
    fn oldest_run_bytes(&self) -> usize {
        lock(&self.runs).runs.front().map_or(0, OpenRun::wire_len)
    }

    /// Whether the lone `next` should wait another turn of the scheduler: always once; a run again while it keeps
    /// growing, up to [`MAX_RUN_DEFERRALS`] turns and a quarter of a frame.
    fn hold_lone(&mut self, next: &Outgoing) -> bool {
        if self.deferred == 0 {
            self.deferred_run_bytes = if matches!(next, Outgoing::Run) { self.oldest_run_bytes() } else { 0 };
            return true;
        }
        if !matches!(next, Outgoing::Run) {
            return false;
        }
        let bytes = self.oldest_run_bytes();
        let wait = run_worth_another_turn(self.deferred, self.deferred_run_bytes, bytes);
        self.deferred_run_bytes = bytes;
        wait
    }

    /// Whether a newer view is queued within the next few items.
    fn view_superseded(&mut self) -> bool {
        while self.held.len() < VIEW_LOOKAHEAD {
            match self.try_recv() {
                Some(f) => self.held.push_back(f),
                None => break,
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
                    Poll::Ready(Some(f)) => self.left(f),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                },
            };
            // A message with nothing queued behind it waits a turn of the scheduler (microseconds, no timer), a run
            // a few turns while it grows: a publisher sending a stream of events then fills a frame meanwhile
            // instead of paying a wake-up and a socket write for each event.
            let lone = matches!(next, Outgoing::Message(_) | Outgoing::Run);
            if lone && self.held.is_empty() && self.rx.is_empty() && self.hold_lone(&next) {
                self.deferred += 1;
                self.held.push_front(next);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.deferred = 0;
            return Poll::Ready(Some(match next {
                Outgoing::Message(m) => self.pack(vec![m]),
                Outgoing::Messages(batch) if batch.is_empty() => continue,
                Outgoing::Messages(batch) => self.pack(batch),
                Outgoing::Run => match self.take_run() {
                    Some(run) => self.pack(vec![run]),
                    None => continue,
                },
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
                    let backlog = node.on_frame(&link, f);
                    node.relay_waiting(backlog).await;
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
            // A peer down for a moment (a restart) is routine; one unreachable for the longest backoff and on is
            // what an operator must see in the log.
            Err(e) if backoff >= BACKOFF_MAX => tracing::warn!(peer = %name, %addr, "cannot reach the peer: {e:#}"),
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
    let (tx, outbound) = queue();
    tx.try_send(node.hello_frame())?;
    let response = tokio::time::timeout(HANDSHAKE_TIMEOUT, client.link(outbound)).await??;
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
        let event = envelope::encode_event(&test_event(n));
        Outgoing::Message(Envelope::one(envelope::Header::new("t", "w"), None, event))
    }

    fn test_event(n: u64) -> crate::cluster::Event {
        crate::cluster::Event::new("Test::n", vec![crate::cluster::Data::Count(n)])
    }

    /// The events of a frame's messages, as the counts they carry, in order.
    fn counts(f: &pb::Frame) -> Vec<u64> {
        let messages = match f.body.clone() {
            Some(pb::frame::Body::Message(m)) => vec![m],
            Some(pb::frame::Body::Messages(b)) => b.messages,
            _ => return vec![],
        };
        let mut out = Vec::new();
        envelope::from_wire(messages, |e| {
            e.events.for_each(|b| out.extend(envelope::decode_event(b).unwrap().args[0].as_count())).unwrap()
        })
        .unwrap();
        out
    }

    #[tokio::test]
    async fn published_events_gather_into_runs_and_keep_their_place_among_frames() {
        let (tx, outbound) = queue();
        let header = envelope::Header::new("t", "w");
        let other = envelope::Header::new("u", "w");
        let publish =
            |h: &Arc<envelope::Header>, n: u64| tx.try_send_event(h, EventRef::Typed(&test_event(n))).unwrap();
        publish(&header, 1);
        publish(&header, 2);
        tx.try_send(view(1)).unwrap();
        publish(&header, 3);
        publish(&other, 4);
        publish(&header, 5);
        let encoded = envelope::encode_event(&test_event(6));
        tx.try_send_event(&header, EventRef::Encoded(&encoded)).unwrap();
        drop(tx);
        let out: Vec<pb::Frame> = outbound.collect().await;
        let kinds: Vec<_> = out.iter().map(kind).collect();
        assert_eq!(
            kinds,
            [("events", 2), ("view", 1), ("events", 4)],
            "a frame queued between events stays between them"
        );
        assert_eq!(counts(&out[0]), [1, 2]);
        assert_eq!(counts(&out[2]), [3, 4, 5, 6], "runs of three headers in publish order");
    }

    #[tokio::test]
    async fn a_full_set_of_runs_refuses_events_and_takes_them_again_once_sent() {
        let (tx, mut out) = queue();
        let headers: Vec<_> = (0..=QUEUED_RUNS).map(|i| envelope::Header::new(format!("t{i}"), "w")).collect();
        let mut refused = 0;
        for h in &headers {
            if tx.try_send_event(h, EventRef::Typed(&test_event(1))).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 1, "the run past the bound is refused, the others queued");
        assert_eq!(counts(&out.next().await.unwrap()).len(), QUEUED_RUNS, "every queued run leaves, in one frame");
        tx.try_send_event(&headers[QUEUED_RUNS], EventRef::Typed(&test_event(7))).unwrap();
        assert_eq!(counts(&out.next().await.unwrap()), [7]);
    }

    #[test]
    fn a_lone_run_waits_while_it_grows_under_a_quarter_frame_for_a_few_turns() {
        assert!(run_worth_another_turn(1, 100, 200), "grew");
        assert!(!run_worth_another_turn(1, 200, 200), "stopped growing");
        assert!(!run_worth_another_turn(1, 100, BATCH_BYTES / 4), "a quarter frame is enough to send");
        assert!(run_worth_another_turn(MAX_RUN_DEFERRALS - 1, 100, 200));
        assert!(!run_worth_another_turn(MAX_RUN_DEFERRALS, 100, 200), "waited its turns");
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
        let (tx, outbound) = queue();
        let heartbeat = frame(pb::frame::Body::Heartbeat(pb::Heartbeat::default())).into();
        for f in [message(1), message(2), message(3), heartbeat, view(1), message(4), view(2), message(5)] {
            tx.try_send(f).unwrap();
        }
        drop(tx);
        let out: Vec<pb::Frame> = outbound.collect().await;
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

    /// What a manager relays for one target from one frame: a run of ~60 kB.
    fn relayed_run() -> Outgoing {
        let event = crate::cluster::Event::new("Test::pad", vec![crate::cluster::Data::Str("x".repeat(BATCH_BYTES))]);
        let message = Envelope::one(envelope::Header::new("t", "w"), None, envelope::encode_event(&event));
        Outgoing::Messages(vec![message])
    }

    #[tokio::test]
    async fn queued_bytes_are_bounded_beside_items_and_room_returns_as_items_leave() {
        let (tx, mut out) = queue();
        let fits = LINK_QUEUE_BYTES / (BATCH_BYTES + ROOM_UNIT);
        for i in 0..fits {
            tx.try_send(relayed_run()).unwrap_or_else(|e| panic!("run {i} of {fits} refused: {e}"));
        }
        assert!(fits < LINK_QUEUE / 16, "far below the bound in items");
        assert!(matches!(tx.try_send(relayed_run()), Err(mpsc::error::TrySendError::Full(_))));
        tx.try_send(view(1)).expect("a frame takes no byte room");
        let waiting = tx.send_timeout(relayed_run(), Duration::from_millis(20)).await;
        assert!(matches!(waiting, Err(mpsc::error::SendTimeoutError::Timeout(_))), "no room appears by itself");
        assert_eq!(kind(&out.next().await.unwrap()).0, "events", "the first run leaves");
        tx.try_send(relayed_run()).expect("room again once a run has left");
    }

    #[tokio::test]
    async fn an_idle_link_sends_each_message_alone() {
        let (tx, mut out) = queue();
        tx.try_send(message(1)).unwrap();
        assert_eq!(kind(&out.next().await.unwrap()), ("events", 1));
        tx.try_send(message(2)).unwrap();
        assert_eq!(kind(&out.next().await.unwrap()), ("events", 1));
    }
}
