//! Topic routing: publish to subscribers (direct links first, the rest relayed once by the manager), pool
//! publishes (HRW and round robin), and delivery of what arrives, with re-routing of HRW messages that were routed
//! with an older membership view.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::data::{Data, Event};
use super::hrw;
use super::link::{self, Link};
use super::node::{Node, Received, lock};
use super::pool::{PublishError, hrw_owner};
use super::proto::pb;
use super::role::Role;
use super::state;
use super::topic;

/// Messages the manager relays while it handles one frame, by target: each target gets them in one frame.
#[derive(Default)]
struct Relays(HashMap<String, Vec<pb::Message>>);

/// A re-routed message is forwarded at most this often, so a flapping view cannot bounce it forever.
const MAX_REROUTE_HOPS: u32 = 3;

impl Node {
    /// Publishes an event to every node subscribed to a prefix of `topic`, this one included. Returns how many
    /// nodes it reached; reaching nobody is not an error (it is counted as `no_subscriber`).
    pub fn publish(&self, topic_name: &str, event: Event) -> Result<usize, PublishError> {
        let view = self.view();
        let targets: Vec<String> = view
            .members
            .iter()
            .filter(|m| m.name != self.name() && m.subscribed(topic_name))
            .map(|m| m.name.clone())
            .collect();
        let msg = self.message_owned(topic_name, event, None);
        self.route(msg, &targets, true)
    }

    /// Publishes to the member of `pool` that owns `key` (Zeek's `Cluster::publish_hrw`).
    pub fn publish_hrw(&self, pool: Role, key: &Data, event: Event) -> Result<String, PublishError> {
        let view = self.view();
        let pk = state::pool_key(key);
        let owner = hrw_owner(self.pool(&view, pool), pool, &pk)
            .inspect_err(|e| self.0.metrics.publish_error(e.reason()))?
            .to_string();
        let route = pb::PoolRoute { pool: pool.as_str().into(), epoch: view.epoch, key: pk.0, hops: 0 };
        let msg = self.message_owned(&topic::node_topic(&owner), event, Some(route));
        self.route(msg, std::slice::from_ref(&owner), false)?;
        Ok(owner)
    }

    /// Publishes to the next member of `pool` in round-robin order for `key` (Zeek's `Cluster::publish_rr`),
    /// preferring members with a live link.
    pub fn publish_rr(&self, pool: Role, key: &str, event: Event) -> Result<String, PublishError> {
        let view = self.view();
        let members = self.pool(&view, pool);
        let pick = lock(&self.0.rr).next(key, &members, |n| n == self.name() || self.link(n).is_some());
        let Some(target) = pick.map(str::to_string) else {
            let e = PublishError::EmptyPool(pool);
            self.0.metrics.publish_error(e.reason());
            return Err(e);
        };
        let msg = self.message_owned(&topic::node_topic(&target), event, None);
        self.route(msg, std::slice::from_ref(&target), false)?;
        Ok(target)
    }

    pub(super) fn message(&self, topic_name: &str, event: &Event, route: Option<pb::PoolRoute>) -> pb::Message {
        self.message_owned(topic_name, event.clone(), route)
    }

    /// A message carrying `event` (moved into the wire form, not copied).
    fn message_owned(&self, topic_name: &str, event: Event, route: Option<pb::PoolRoute>) -> pb::Message {
        pb::Message {
            topic: topic_name.to_string(),
            event: Some(event.into_pb()),
            origin: self.name().to_string(),
            relay_to: Vec::new(),
            route,
        }
    }

    /// Sends `msg` to `targets` (direct links first, the rest relayed once by the manager) and, if `to_self` and the
    /// topic matches our subscriptions or we are a target, to our own handlers.
    pub(super) fn route(&self, msg: pb::Message, targets: &[String], to_self: bool) -> Result<usize, PublishError> {
        self.0.events_out.fetch_add(1, Ordering::Relaxed);
        self.0.metrics.event_out(&msg.topic);
        let mut local = to_self && self.0.subs.read().unwrap_or_else(|e| e.into_inner()).matches(&msg.topic);
        let mut links = Vec::new();
        let mut relay = Vec::new();
        for t in targets {
            if t == self.name() {
                local = true;
            } else {
                match self.link(t) {
                    Some(l) => links.push(l),
                    None => relay.push(t.clone()),
                }
            }
        }
        let mut reached = 0;
        let mut error = None;
        // The message is copied for all but its last destination, which takes it.
        let mut copies = links.len() + usize::from(!relay.is_empty()) + usize::from(local);
        let mut take = |msg: &mut pb::Message| {
            copies -= 1;
            if copies == 0 { std::mem::take(msg) } else { msg.clone() }
        };
        let mut msg = msg;
        for l in links {
            match l.try_send(link::frame(pb::frame::Body::Message(take(&mut msg)))) {
                Ok(()) => reached += 1,
                Err(e) => error = Some(e),
            }
        }
        if !relay.is_empty() {
            match self.relay_via_manager(take(&mut msg), relay) {
                Ok(n) => reached += n,
                Err(e) => error = Some(e),
            }
        }
        if local {
            self.deliver_local(take(&mut msg));
            reached += 1;
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

    fn relay_via_manager(&self, msg: pb::Message, relay_to: Vec<String>) -> Result<usize, PublishError> {
        let manager = &self.0.cfg.manager.name;
        let first = relay_to.first().cloned().unwrap_or_default();
        if self.role() == Role::Manager {
            return Err(PublishError::Unreachable(first));
        }
        let link = self.link(manager).ok_or(PublishError::Unreachable(first))?;
        let n = relay_to.len();
        let relayed = pb::Message { relay_to, ..msg };
        link.try_send(link::frame(pb::frame::Body::Message(relayed)))?;
        Ok(n)
    }

    fn deliver_local(&self, msg: pb::Message) {
        let event = match msg.event.map(Event::from_pb) {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::warn!(origin = %msg.origin, "dropping a malformed event: {e}");
                self.0.metrics.malformed_frames.inc();
                return;
            }
            None => {
                self.0.metrics.malformed_frames.inc();
                return;
            }
        };
        self.0.events_in.fetch_add(1, Ordering::Relaxed);
        self.0.metrics.event_in(&msg.topic);
        let received = Received { topic: msg.topic, origin: msg.origin, event };
        if self.0.local_tx.try_send(received).is_err() {
            self.0.metrics.publish_error("local_queue_full");
        }
    }

    pub(super) fn on_message(&self, from: &Arc<Link>, m: pb::Message) {
        let mut relays = Relays::default();
        self.accept(from, m, &mut relays);
        self.send_relays(relays);
    }

    /// A frame of messages: each handled as if it came alone, except that what the manager relays to one node
    /// goes on in one frame.
    pub(super) fn on_messages(&self, from: &Arc<Link>, batch: pb::Messages) {
        let mut relays = Relays::default();
        for m in batch.messages {
            self.accept(from, m, &mut relays);
        }
        self.send_relays(relays);
    }

    /// Checks one message from a peer, then delivers it here or (on the manager) collects it for relaying.
    fn accept(&self, from: &Arc<Link>, mut m: pb::Message, relays: &mut Relays) {
        if m.event.is_none() || m.topic.is_empty() {
            return self.refuse(from, 2, "a message needs a topic and an event");
        }
        if let Some(bad) = m.event.as_ref().and_then(|e| Event::check_pb(e).err()) {
            return self.refuse(from, 2, &bad.to_string());
        }
        if !m.relay_to.is_empty() {
            if self.role() != Role::Manager {
                return self.refuse(from, 3, "only the manager relays");
            }
            let targets = std::mem::take(&mut m.relay_to);
            let last = targets.len() - 1;
            for (i, t) in targets.into_iter().enumerate() {
                let copy = if i == last { std::mem::take(&mut m) } else { m.clone() };
                if t == self.name() {
                    self.receive(copy);
                } else {
                    relays.0.entry(t).or_default().push(copy);
                }
            }
            return;
        }
        self.receive(m);
    }

    fn send_relays(&self, relays: Relays) {
        for (target, mut messages) in relays.0 {
            let n = messages.len() as u64;
            let Some(l) = self.link(&target) else {
                self.0.metrics.publish_errors_by("unreachable", n);
                continue;
            };
            let body = match messages.pop() {
                Some(only) if messages.is_empty() => pb::frame::Body::Message(only),
                Some(last) => {
                    messages.push(last);
                    pb::frame::Body::Messages(pb::Messages { messages })
                }
                None => continue,
            };
            if let Err(e) = l.try_send(link::frame(body)) {
                self.0.metrics.publish_errors_by(e.reason(), n);
            }
        }
    }

    /// A message addressed to this node: re-routed if it was routed with an older view and is not ours any more,
    /// otherwise delivered to our handlers if we subscribe to its topic.
    fn receive(&self, mut m: pb::Message) {
        if let Some(route) = m.route.as_mut() {
            let view = self.view();
            if route.epoch < view.epoch && route.hops < MAX_REROUTE_HOPS {
                let pool = route.pool.parse::<Role>().ok();
                let owner = pool.and_then(|p| hrw::owner(self.pool(&view, p), &hrw::PoolKey(route.key.clone())));
                if let Some(owner) = owner.filter(|o| *o != self.name()).map(str::to_string) {
                    route.epoch = view.epoch;
                    route.hops += 1;
                    m.topic = topic::node_topic(&owner);
                    self.0.metrics.rerouted.inc();
                    let _ = self.route(m, &[owner], false);
                    return;
                }
            }
        }
        let subscribed = self.0.subs.read().unwrap_or_else(|e| e.into_inner()).matches(&m.topic);
        if subscribed {
            self.deliver_local(m);
        } else {
            self.0.metrics.publish_error("not_subscribed");
        }
    }
}
