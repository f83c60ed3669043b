//! Topic routing: publish to subscribers (direct links first, the rest relayed once by the manager), pool
//! publishes (HRW and round robin), and delivery of what arrives, with re-routing of HRW messages that were routed
//! with an older membership view.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};

use super::data::{Data, Event};
use super::datawire::EventReader;
use super::envelope::{self, Envelope, EventRef, Events, Header};
use super::hrw;
use super::link::{Link, Outgoing};
use super::local::Delivery;
use super::membership::View;
use super::node::{AcceptedRoute, Node, Received, lock};
use super::pool::{PublishError, hrw_owner};
use super::proto::pb;
use super::role::Role;
use super::state;
use super::topic;

/// What the manager relays while it handles one frame: each target gets its messages in one queue item.
#[derive(Default)]
struct Relays {
    by_target: Vec<(String, Vec<Envelope>)>,
    /// The last relayed header and its forwarded form (without relay targets): a run of messages shares both.
    forwarded: Option<(Arc<Header>, Arc<Header>)>,
}

impl Relays {
    fn forwarded_header(&mut self, h: &Arc<Header>) -> Arc<Header> {
        match &self.forwarded {
            Some((from, to)) if Arc::ptr_eq(from, h) => Arc::clone(to),
            _ => {
                let to = Arc::new(Header { relay_to: Vec::new(), ..(**h).clone() });
                self.forwarded = Some((Arc::clone(h), Arc::clone(&to)));
                to
            }
        }
    }

    fn push(&mut self, target: &str, e: Envelope) {
        match self.by_target.iter_mut().find(|(t, _)| t == target) {
            Some((_, queue)) => queue.push(e),
            None => self.by_target.push((target.to_string(), vec![e])),
        }
    }
}

/// Relays the manager could not queue at once: the target link, the messages, how many events they hold.
#[derive(Default)]
#[must_use]
pub struct RelayBacklog(Vec<(Arc<Link>, Outgoing, u64)>);

/// How long a manager's link reader waits for room in a relay target's queue before dropping what it relays: long
/// enough to ride out a busy moment of the target, short enough that a stuck target holds its source's other traffic
/// back for only a fraction of the liveness timeout.
const RELAY_WAIT: Duration = Duration::from_millis(250);

/// A message's event: as its publisher made it (owned, or borrowed from a publisher that keeps it: encoding needs no
/// ownership, only delivery to our own handlers takes a copy), or encoded (a message that arrived and is being
/// re-routed).
pub(super) enum Payload<'a> {
    Event(Cow<'a, Event>),
    Wire(Bytes),
}

/// Where a message to one header goes: the peers it reaches over their own links, the header asking the manager to
/// relay it to the rest, and whether our own handlers get it.
pub(super) struct Plan {
    header: Arc<Header>,
    /// Weak: a cached plan must not keep a closed link (and its stream) alive.
    links: Vec<(String, Weak<Link>)>,
    relayed: Option<Relayed>,
    local: bool,
    /// The topic's `events_out` counter.
    events_out: Counter,
}

/// The part of a plan the manager relays: the header naming the targets, and our link to the manager (none on the
/// manager itself, or while it is not linked).
struct Relayed {
    header: Arc<Header>,
    manager: Option<Weak<Link>>,
}

/// The plans of `publish`, per topic, valid while the view, the links and our subscriptions stay as they were (a
/// generation counter, moved on by each change): a stream of publishes to one topic looks its targets, links and
/// headers up once instead of for each event.
pub(super) struct TopicPlans {
    /// Tells this table's plans apart from another node's in a thread's [`LAST_PLAN`].
    id: u64,
    generation: AtomicU64,
    by_topic: RwLock<HashMap<String, (u64, Arc<Plan>), foldhash::fast::RandomState>>,
}

impl Default for TopicPlans {
    fn default() -> TopicPlans {
        static TABLES: AtomicU64 = AtomicU64::new(0);
        TopicPlans {
            id: TABLES.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::default(),
            by_topic: RwLock::default(),
        }
    }
}

/// The plan a thread published with last: a thread publishing a stream of events to one topic finds it without the
/// table's lock, hashing or reference counting (a third of the publisher's time per event in the relay benchmark).
struct LastPlan {
    table: u64,
    generation: u64,
    topic: Box<str>,
    plan: Arc<Plan>,
}

thread_local! {
    static LAST_PLAN: RefCell<Option<LastPlan>> = const { RefCell::new(None) };
}

/// Topics whose plans are kept before the cache starts over (node topics grow with the cluster).
const PLANNED_TOPICS: usize = 4096;

impl TopicPlans {
    /// Runs `f` with the plan for `topic` (see [`TopicPlans::get_or_make`]), the one this thread used last if it is
    /// still current.
    fn with_plan<R>(&self, topic: &str, make: impl FnOnce() -> Plan, f: impl FnOnce(&Plan) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        LAST_PLAN.with(|last| {
            // `f` never publishes, so the slot is free here; should it be borrowed all the same, the table serves.
            if let Ok(last) = last.try_borrow()
                && let Some(l) = last.as_ref().filter(|l| l.table == self.id && l.generation == generation)
                && *l.topic == *topic
            {
                return f(&l.plan);
            }
            let plan = self.get_or_make(topic, make);
            if let Ok(mut slot) = last.try_borrow_mut() {
                let topic = topic.into();
                *slot = Some(LastPlan { table: self.id, generation, topic, plan: Arc::clone(&plan) });
            }
            f(&plan)
        })
    }

    /// The view, the links or the subscriptions changed: every plan is stale.
    pub(super) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The plan for `topic`, made by `make` if there is none from the current generation. The generation is read
    /// before the plan is made: a change while it is made leaves it stale, and the next publish makes it again.
    fn get_or_make(&self, topic: &str, make: impl FnOnce() -> Plan) -> Arc<Plan> {
        let generation = self.generation.load(Ordering::Acquire);
        let plans = self.by_topic.read().unwrap_or_else(|e| e.into_inner());
        if let Some((_, plan)) = plans.get(topic).filter(|(g, _)| *g == generation) {
            return Arc::clone(plan);
        }
        drop(plans);
        let plan = Arc::new(make());
        let mut plans = self.by_topic.write().unwrap_or_else(|e| e.into_inner());
        if plans.len() >= PLANNED_TOPICS && !plans.contains_key(topic) {
            plans.clear();
        }
        plans.insert(topic.to_string(), (generation, Arc::clone(&plan)));
        plan
    }
}

/// A re-routed message is forwarded at most this often, so a flapping view cannot bounce it forever.
const MAX_REROUTE_HOPS: u32 = 3;

impl Node {
    /// Publishes an event to every node subscribed to a prefix of `topic`, this one included. Returns how many
    /// nodes it reached; reaching nobody is not an error (it is counted as `no_subscriber`).
    pub fn publish<'a>(&self, topic_name: &str, event: impl Into<Cow<'a, Event>>) -> Result<usize, PublishError> {
        let event = event.into();
        let make = || {
            let view = self.view();
            let targets: Vec<&str> = view
                .members
                .iter()
                .filter(|m| m.name != self.name() && m.subscribed(topic_name))
                .map(|m| m.name.as_str())
                .collect();
            self.plan(self.header(topic_name), &targets, true)
        };
        self.0.plans.with_plan(topic_name, make, |plan| self.send(plan, None, Payload::Event(event)))
    }

    /// Publishes to the member of `pool` that owns `key` (Zeek's `Cluster::publish_hrw`).
    pub fn publish_hrw<'a>(
        &self,
        pool: Role,
        key: &Data,
        event: impl Into<Cow<'a, Event>>,
    ) -> Result<String, PublishError> {
        let view = self.view();
        let pk = state::pool_key(key);
        let owner = hrw_owner(self.pool(&view, pool), pool, &pk)
            .inspect_err(|e| self.0.metrics.publish_error(e.reason()))?
            .to_string();
        let route = pb::PoolRoute { pool: pool.as_str().into(), epoch: view.epoch, key: pk.0, hops: 0 };
        let header = self.header(&topic::node_topic(&owner));
        self.route(header, Some(route), Payload::Event(event.into()), &[&owner], false)?;
        Ok(owner)
    }

    /// Publishes to the next member of `pool` in round-robin order for `key` (Zeek's `Cluster::publish_rr`),
    /// preferring members with a live link.
    pub fn publish_rr<'a>(
        &self,
        pool: Role,
        key: &str,
        event: impl Into<Cow<'a, Event>>,
    ) -> Result<String, PublishError> {
        let view = self.view();
        let members = self.pool(&view, pool);
        let pick = lock(&self.0.rr).next(key, &members, |n| n == self.name() || self.link(n).is_some());
        let Some(target) = pick.map(str::to_string) else {
            let e = PublishError::EmptyPool(pool);
            self.0.metrics.publish_error(e.reason());
            return Err(e);
        };
        let header = self.header(&topic::node_topic(&target));
        self.route(header, None, Payload::Event(event.into()), &[&target], false)?;
        Ok(target)
    }

    /// The header of a message this node publishes to `topic_name`.
    pub(super) fn header(&self, topic_name: &str) -> Arc<Header> {
        self.0.headers.get(topic_name, &[])
    }

    /// Sends a message to `targets` (direct links first, the rest relayed once by the manager) and, if `to_self` and
    /// the topic matches our subscriptions or we are a target, to our own handlers. The event is encoded once for
    /// all remote targets, and not at all for our own handlers.
    pub(super) fn route(
        &self,
        header: Arc<Header>,
        route: Option<pb::PoolRoute>,
        payload: Payload<'_>,
        targets: &[&str],
        to_self: bool,
    ) -> Result<usize, PublishError> {
        let plan = self.plan(header, targets, to_self);
        self.send(&plan, route, payload)
    }

    /// Where a message to `targets` goes: over our links to them, through the manager to the others, and to our own
    /// handlers if we are a target or (`to_self`) subscribe to the header's topic.
    fn plan(&self, header: Arc<Header>, targets: &[&str], to_self: bool) -> Plan {
        let mut local = to_self && self.0.subs.read().unwrap_or_else(|e| e.into_inner()).matches(&header.topic);
        let mut links = Vec::new();
        let mut relay = Vec::new();
        for t in targets {
            if *t == self.name() {
                local = true;
            } else {
                match self.link(t) {
                    Some(l) => links.push((t.to_string(), Arc::downgrade(&l))),
                    None => relay.push(*t),
                }
            }
        }
        let relayed = (!relay.is_empty()).then(|| {
            let header = if header.origin == self.name() {
                self.0.headers.get(&header.topic, &relay)
            } else {
                let relay_to = relay.iter().map(|t| t.to_string()).collect();
                Arc::new(Header { relay_to, ..(*header).clone() })
            };
            let manager = (self.role() != Role::Manager)
                .then(|| self.link(&self.0.cfg.manager.name))
                .flatten()
                .map(|l| Arc::downgrade(&l));
            Relayed { header, manager }
        });
        let events_out = self.0.metrics.events_out_counter(&header.topic);
        Plan { header, links, relayed, local, events_out }
    }

    /// Sends a message as `plan` says. An event without a pool route is written straight into each link's run of
    /// events; a routed one is encoded once for all remote targets. Our own handlers get the event as it is.
    fn send(&self, plan: &Plan, route: Option<pb::PoolRoute>, payload: Payload<'_>) -> Result<usize, PublishError> {
        let Plan { header, links, relayed, local, events_out } = plan;
        self.0.events_out.fetch_add(1, Ordering::Relaxed);
        events_out.inc();
        let route = route.map(Box::new);
        let event_ref = match &payload {
            Payload::Event(e) => EventRef::Typed(e),
            Payload::Wire(b) => EventRef::Encoded(b),
        };
        // A keyed message travels alone with its route, encoded once for every remote target.
        let remote = !links.is_empty() || relayed.is_some();
        let routed = route.as_ref().filter(|_| remote).map(|r| {
            let bytes = match &payload {
                Payload::Event(e) => envelope::encode_event(e),
                Payload::Wire(b) => b.clone(),
            };
            (r, bytes)
        });
        let to_link = |link: &Link, header: &Arc<Header>| match &routed {
            None => link.try_send_event(header, event_ref),
            Some((r, b)) => link.try_send(Envelope::one(Arc::clone(header), Some((*r).clone()), b.clone())),
        };
        let mut reached = 0;
        let mut error = None;
        for (name, link) in links {
            let sent = match link.upgrade() {
                Some(l) => to_link(&l, header),
                None => Err(PublishError::Unreachable(name.clone())),
            };
            match sent {
                Ok(()) => reached += 1,
                Err(e) => error = Some(e),
            }
        }
        if let Some(Relayed { header, manager }) = relayed {
            match manager.as_ref().and_then(Weak::upgrade) {
                Some(m) => match to_link(&m, header) {
                    Ok(()) => reached += header.relay_to.len(),
                    Err(e) => error = Some(e),
                },
                None => error = Some(PublishError::Unreachable(header.relay_to.first().cloned().unwrap_or_default())),
            }
        }
        if *local {
            // Our own keyed publish: we owned the key under the view it was routed with.
            let accepted = |route: Box<pb::PoolRoute>| AcceptedRoute { view_epoch: route.epoch, route };
            let delivered = match payload {
                Payload::Event(event) => {
                    let event = event.into_owned();
                    self.enqueue(Received { header: Arc::clone(header), event, route: route.map(accepted) });
                    Ok(())
                }
                Payload::Wire(b) => {
                    let epoch = route.as_ref().map_or(0, |r| r.epoch);
                    self.deliver_wire(Envelope::one(Arc::clone(header), route, b), epoch)
                }
            };
            match delivered {
                Ok(()) => reached += 1,
                Err(e) => {
                    self.0.metrics.malformed_frames.inc();
                    tracing::warn!(origin = %header.origin, "dropping a malformed event: {e}");
                }
            }
        }
        if let Some(e) = &error {
            self.0.metrics.publish_error(e.reason());
        }
        match error {
            Some(e) if reached == 0 => Err(e),
            _ => {
                if reached == 0 {
                    self.0.metrics.publish_error("no_subscriber");
                }
                Ok(reached)
            }
        }
    }

    /// Hands an event to this node's handlers.
    fn enqueue(&self, r: Received) {
        self.count_in(&r.header.topic, 1);
        self.queue_local(r);
    }

    fn count_in(&self, topic: &str, n: u64) {
        self.0.events_in.fetch_add(n, Ordering::Relaxed);
        self.0.metrics.events_in(topic, n);
    }

    pub(super) fn queue_local(&self, r: Received) {
        self.deliver(Delivery::One(r));
    }

    fn deliver(&self, d: Delivery) {
        if let Err(refused) = self.0.local.push(d) {
            self.0.metrics.publish_errors_by("local_queue_full", refused.len() as u64);
        }
    }

    /// Decodes a message's events and hands them to this node's handlers, with the pool route it was accepted under,
    /// in one delivery. A malformed event is skipped and reported; the others are delivered.
    fn deliver_wire(&self, e: Envelope, view_epoch: u64) -> Result<(), String> {
        self.count_in(&e.header.topic, u64::from(e.count()));
        let mut route = e.route.map(|route| AcceptedRoute { route, view_epoch });
        let mut bad = None;
        let mut decoded = Vec::with_capacity(e.events.count() as usize);
        let mut reader = EventReader::default();
        let framing = e.events.for_each(|bytes| match reader.read(bytes) {
            Ok(event) => decoded.push(Received { header: Arc::clone(&e.header), event, route: route.take() }),
            Err(err) => bad = Some(err),
        });
        match decoded.len() {
            0 => {}
            1 => self.queue_local(decoded.pop().expect("one event")),
            _ => self.deliver(Delivery::Many(decoded)),
        }
        match (framing, bad) {
            (Err(err), _) => Err(err.to_string()),
            (Ok(()), Some(err)) => Err(err.to_string()),
            (Ok(()), None) => Ok(()),
        }
    }

    /// The owner of a keyed message under `view`, if that is not this node: it was routed with an older view.
    pub(super) fn moved_owner(&self, route: &pb::PoolRoute, view: &View) -> Option<String> {
        if route.epoch >= view.epoch || route.hops >= MAX_REROUTE_HOPS {
            return None;
        }
        let pool = route.pool.parse::<Role>().ok()?;
        hrw::owner(self.pool(view, pool), &hrw::PoolKey(route.key.clone()))
            .filter(|o| *o != self.name())
            .map(str::to_string)
    }

    /// Forwards a keyed message to its owner under `view`.
    pub(super) fn reroute(
        &self,
        header: &Header,
        route: &pb::PoolRoute,
        view: &View,
        owner: &str,
        payload: Payload<'_>,
    ) {
        let route = pb::PoolRoute { epoch: view.epoch, hops: route.hops + 1, ..route.clone() };
        let header = Arc::new(Header { topic: topic::node_topic(owner), ..header.clone() });
        self.0.metrics.rerouted.inc();
        let _ = self.route(header, Some(route), payload, &[owner], false);
    }

    /// The messages of one frame (`Message` or `Messages`), each handled as if it came alone, except that what the
    /// manager relays to one node goes on in one queue item.
    pub(super) fn on_messages(&self, from: &Arc<Link>, messages: Vec<pb::Message>) -> RelayBacklog {
        let mut relays = Relays::default();
        if let Err(e) = envelope::from_wire(messages, |m| self.accept(from, m, &mut relays)) {
            self.refuse(from, 2, &e.to_string());
        }
        self.send_relays(relays)
    }

    /// Delivers one message from a peer here or (on the manager) collects it for relaying, without decoding it.
    fn accept(&self, from: &Arc<Link>, m: Envelope, relays: &mut Relays) {
        if m.header.relay_to.is_empty() {
            return self.receive(from, m);
        }
        if self.role() != Role::Manager {
            return self.refuse(from, 3, "only the manager relays");
        }
        // A run is forwarded whole: its framing is checked here so that a broken one goes no further.
        if let Err(e) = m.events.check() {
            return self.refuse(from, 2, &e.to_string());
        }
        let forwarded = relays.forwarded_header(&m.header);
        for t in &m.header.relay_to {
            let copy = Envelope { header: Arc::clone(&forwarded), route: m.route.clone(), events: m.events.clone() };
            if t == self.name() {
                self.receive(from, copy);
            } else {
                relays.push(t, copy);
            }
        }
    }

    /// Queues what the manager relays, each target's messages as one item. A target whose queue is full is left to
    /// the link reader, which waits for room ([`Node::relay_waiting`]).
    fn send_relays(&self, relays: Relays) -> RelayBacklog {
        let mut backlog = RelayBacklog::default();
        for (target, messages) in relays.by_target {
            let n: u64 = messages.iter().map(|m| u64::from(m.count())).sum();
            let Some(l) = self.link(&target) else {
                self.0.metrics.publish_errors_by("unreachable", n);
                continue;
            };
            match l.queue().try_send(messages) {
                Ok(()) => {}
                Err(TrySendError::Full(item)) => backlog.0.push((l, item, n)),
                Err(TrySendError::Closed(_)) => self.0.metrics.publish_errors_by("unreachable", n),
            }
        }
        backlog
    }

    /// Waits up to [`RELAY_WAIT`] for room for each relay the manager could not queue at once; what still finds no
    /// room is dropped and counted (`queue_full`). Meanwhile the waiting link reader reads nothing more from its peer,
    /// so HTTP/2 flow control slows the publisher down to what the target takes: its own publishes then meet a full
    /// queue, where the publisher decides (and counts) what to drop, instead of the manager dropping in the middle.
    pub async fn relay_waiting(&self, backlog: RelayBacklog) {
        for (link, item, n) in backlog.0 {
            if let Err(e) = link.queue().send_timeout(item, RELAY_WAIT).await {
                let reason = if matches!(e, SendTimeoutError::Timeout(_)) { "queue_full" } else { "unreachable" };
                self.0.metrics.publish_errors_by(reason, n);
            }
        }
    }

    /// A message addressed to this node: re-routed if it was routed with an older view and is not ours any more,
    /// otherwise delivered to our handlers if we subscribe to its topic.
    fn receive(&self, from: &Arc<Link>, m: Envelope) {
        let view = self.view();
        if let (Some(route), Events::One(event)) = (m.route.as_deref(), &m.events)
            && let Some(owner) = self.moved_owner(route, &view)
        {
            return self.reroute(&m.header, route, &view, &owner, Payload::Wire(event.clone()));
        }
        let subscribed = self.0.subs.read().unwrap_or_else(|e| e.into_inner()).matches(&m.header.topic);
        if !subscribed {
            self.0.metrics.publish_errors_by("not_subscribed", u64::from(m.count()));
        } else if let Err(bad) = self.deliver_wire(m, view.epoch) {
            self.refuse(from, 2, &bad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(local: bool) -> Plan {
        Plan { header: Header::new("t", "n"), links: Vec::new(), relayed: None, local, events_out: Counter::default() }
    }

    /// The manager's side of a relay whose target is slow: the reader waits for room rather than dropping, and drops
    /// (counted) only once the wait is over.
    #[tokio::test]
    async fn a_relay_waits_for_room_in_its_targets_queue_and_drops_only_after_the_wait() {
        use crate::cluster::link::{self, LINK_QUEUE};
        use crate::cluster::node::LogSettings;
        use tokio_stream::StreamExt as _;

        let dir = tempfile::tempdir().unwrap();
        let logging = LogSettings {
            dir: dir.path().into(),
            format: crate::logs::LogFormat::Tsv,
            rotation: None,
            retention: None,
        };
        let node = Node::standalone(logging).await.unwrap();
        let (tx, mut outbound) = link::queue();
        let hello = pb::Hello { name: "worker-2".into(), ..Default::default() };
        let target = Arc::new(Link::new(1, hello, Role::Worker, tx, 0));
        let heartbeat = || link::frame(pb::frame::Body::Heartbeat(pb::Heartbeat::default()));
        for _ in 0..LINK_QUEUE {
            target.try_send(heartbeat()).unwrap();
        }
        let event = envelope::encode_event(&Event::new("T::n", vec![]));
        let relay = || {
            let run = vec![Envelope::one(Header::new("t", "worker-1"), None, event.clone()); 3];
            RelayBacklog(vec![(Arc::clone(&target), Outgoing::Messages(run), 3)])
        };
        let dropped = || node.metrics().publish_errors.get_or_create(&vec![("reason", "queue_full".to_string())]).get();

        // The target takes a frame while the reader waits: nothing is dropped.
        let taker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            outbound.next().await;
            outbound
        });
        node.relay_waiting(relay()).await;
        assert_eq!(dropped(), 0);
        let _outbound = taker.await.unwrap();
        assert_eq!(target.queued(), LINK_QUEUE, "the relayed messages took the room that was made");

        // The target takes nothing: after the wait the three events are dropped and counted.
        let started = std::time::Instant::now();
        node.relay_waiting(relay()).await;
        assert!(started.elapsed() >= RELAY_WAIT);
        assert_eq!(dropped(), 3);
    }

    #[test]
    fn a_threads_last_plan_serves_its_table_and_topic_until_the_next_change() {
        let (plans, other) = (TopicPlans::default(), TopicPlans::default());
        let local = |p: &Plan| p.local;
        assert!(plans.with_plan("t", || plan(true), local));
        assert!(plans.with_plan("t", || plan(false), local), "the last plan, still current");
        assert!(!other.with_plan("t", || plan(false), local), "another node's table has its own plans");
        assert!(plans.with_plan("t", || plan(false), local), "back to the first table: its kept plan");
        assert!(!plans.with_plan("u", || plan(false), local), "another topic");
        plans.invalidate();
        assert!(!plans.with_plan("t", || plan(false), local), "made again after a change");
    }

    #[test]
    fn a_plan_is_kept_until_the_next_change_and_one_made_across_a_change_is_not_kept() {
        let plans = TopicPlans::default();
        assert!(plans.get_or_make("t", || plan(true)).local);
        assert!(plans.get_or_make("t", || plan(false)).local, "kept: no change since");
        plans.invalidate();
        assert!(!plans.get_or_make("t", || plan(false)).local, "made again after a change");
        // A change while a plan is being made: that plan is used once, then made again.
        plans.invalidate();
        let made_during_a_change = plans.get_or_make("t", || {
            plans.invalidate();
            plan(true)
        });
        assert!(made_during_a_change.local);
        assert!(!plans.get_or_make("t", || plan(false)).local, "not kept: made from what was there before");
        assert!(plans.get_or_make("u", || plan(true)).local, "topics are apart");
    }
}
