//! The gRPC service every node serves: `Link` (peer links) and `Status` (for `zeek-node ctl`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::link::{self, Link, run_link};
use super::node::Node;
use super::proto::{MAX_FRAME_BYTES, pb};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Service {
    node: Node,
}

impl Service {
    pub fn server(node: Node) -> pb::cluster_server::ClusterServer<Service> {
        pb::cluster_server::ClusterServer::new(Service { node })
            .max_decoding_message_size(MAX_FRAME_BYTES)
            .max_encoding_message_size(MAX_FRAME_BYTES)
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::Frame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Service {
    type LinkStream = FrameStream;

    async fn link(&self, request: Request<Streaming<pb::Frame>>) -> Result<Response<FrameStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello within 10 s"))??
            .ok_or_else(|| Status::invalid_argument("the link closed before its hello"))?;
        let Some(pb::frame::Body::Hello(hello)) = first.body else {
            self.node.metrics().malformed_frames.inc();
            return Err(Status::invalid_argument("the first frame on a link must be a hello"));
        };
        let role = self.node.check_hello(&hello).inspect_err(|_| {
            self.node.metrics().malformed_frames.inc();
        })?;
        if self.node.is_leaving() {
            return Err(Status::unavailable("this node is leaving the cluster"));
        }
        let (tx, outbound) = link::queue();
        tx.try_send(self.node.hello_frame()).map_err(|_| Status::internal("link queue"))?;
        let link = Arc::new(Link::new(self.node.next_link_id(), hello, role, tx, self.node.now_ms()));
        tokio::spawn(run_link(self.node.clone(), link, inbound));
        Ok(Response::new(Box::pin(outbound.map(Ok))))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusReply>, Status> {
        let node = &self.node;
        let view = node.view();
        let now = node.now_ms();
        let mut peers: Vec<pb::PeerStatus> = node
            .links()
            .iter()
            .map(|l| pb::PeerStatus {
                name: l.name.clone(),
                role: l.role.to_pb() as i32,
                advertise: l.advertise.clone(),
                linked: true,
                last_heard_secs: now.saturating_sub(l.last_heard_ms()) as f64 / 1000.0,
                stats: Some(*l.stats.lock().unwrap_or_else(|e| e.into_inner())),
            })
            .collect();
        for m in &view.members {
            if m.name != node.name() && !peers.iter().any(|p| p.name == m.name) {
                peers.push(pb::PeerStatus {
                    name: m.name.clone(),
                    role: m.role.to_pb() as i32,
                    advertise: m.advertise.clone(),
                    linked: false,
                    last_heard_secs: -1.0,
                    stats: None,
                });
            }
        }
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::StatusReply {
            cluster: node.cluster().to_string(),
            node: node.name().to_string(),
            role: node.role().to_pb() as i32,
            view: Some(view.to_pb()),
            peers,
            uptime_secs: node.uptime().as_secs_f64(),
            stats: Some(node.stats()),
        }))
    }
}
