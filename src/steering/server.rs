//! The steering DNS server: a hickory-server request handler that answers
//! A queries for the CDN name by the client's source address, served on a
//! loopback UDP socket and a TCP listener on the same port.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use super::{EdgeTarget, Health, choose, poll};
use crate::topology::Topology;

/// TTL of every answer, in seconds: low, so clients follow health changes.
pub const DNS_TTL_SECS: u32 = 5;

/// How often edge health is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Answers queries for the CDN name.
pub struct SteeringHandler {
    topology: Arc<Topology>,
    targets: Arc<[EdgeTarget]>,
    health: Health,
    name: LowerName,
    soa: Record,
}

impl SteeringHandler {
    /// A handler for `topology`'s CDN name, steering to `targets` by
    /// `health`.
    pub fn new(
        topology: Arc<Topology>,
        targets: Arc<[EdgeTarget]>,
        health: Health,
    ) -> anyhow::Result<SteeringHandler> {
        let name = Name::from_str(&format!("{}.", topology.cdn_name))
            .with_context(|| format!("`{}` is not a DNS name", topology.cdn_name))?;
        let hostmaster = Name::from_str(&format!("hostmaster.{}.", topology.cdn_name))
            .with_context(|| format!("`{}` is not a DNS name", topology.cdn_name))?;
        let soa = Record::from_rdata(
            name.clone(),
            DNS_TTL_SECS,
            RData::SOA(SOA::new(
                name.clone(),
                hostmaster,
                1,
                3600,
                600,
                86_400,
                DNS_TTL_SECS,
            )),
        );
        Ok(SteeringHandler {
            topology,
            targets,
            health,
            name: LowerName::new(&name),
            soa,
        })
    }

    /// The response code and A records for a query of `qname`/`qtype` from
    /// `src`, and whether the SOA goes into the authority section.
    fn answer(
        &self,
        qname: &LowerName,
        qtype: RecordType,
        src: IpAddr,
    ) -> (ResponseCode, Vec<Record>, bool) {
        if !self.name.zone_of(qname) {
            return (ResponseCode::Refused, Vec::new(), false);
        }
        if *qname != self.name {
            return (ResponseCode::NXDomain, Vec::new(), true);
        }
        match qtype {
            RecordType::A => {}
            RecordType::SOA => return (ResponseCode::NoError, vec![self.soa.clone()], false),
            _ => return (ResponseCode::NoError, Vec::new(), true),
        }
        let Some(steered) = choose(&self.topology, &self.targets, &self.health, src) else {
            return (ResponseCode::ServFail, Vec::new(), false);
        };
        tracing::debug!(
            client = %src,
            client_region = steered.client_region,
            region = steered.region,
            "steered"
        );
        let owner = Name::from(qname.clone());
        let records = steered
            .edges
            .iter()
            .map(|(_, ip)| Record::from_rdata(owner.clone(), DNS_TTL_SECS, RData::A(A(*ip))))
            .collect();
        (ResponseCode::NoError, records, false)
    }
}

#[async_trait::async_trait]
impl RequestHandler for SteeringHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = false;
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().max(512));
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let (code, answers, with_soa) = if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            (ResponseCode::NotImp, Vec::new(), false)
        } else {
            match request.request_info() {
                Ok(info) => self.answer(
                    info.query.name(),
                    info.query.query_type(),
                    request.src().ip(),
                ),
                Err(_) => (ResponseCode::FormErr, Vec::new(), false),
            }
        };
        metadata.response_code = code;
        let soa: Vec<&Record> = if with_soa {
            vec![&self.soa]
        } else {
            Vec::new()
        };
        let response = builder.build(metadata, answers.iter(), [], soa, []);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %e, "steering DNS: cannot send the answer");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A running steering DNS server with its health poller.
pub struct SteeringServer {
    addr: SocketAddr,
    health: Health,
    server: Server<SteeringHandler>,
    stop_poll: watch::Sender<bool>,
    poller: tokio::task::JoinHandle<()>,
}

impl SteeringServer {
    /// Binds UDP and TCP on `bind` (port 0: a free port, the same for
    /// both) and starts answering and polling edge health.
    pub async fn start(
        topology: Arc<Topology>,
        targets: Vec<EdgeTarget>,
        bind: SocketAddr,
    ) -> anyhow::Result<SteeringServer> {
        if !bind.ip().is_loopback() {
            bail!("the steering DNS must listen on loopback, not {bind}");
        }
        let (udp, tcp) = bind_pair(bind).await?;
        let addr = udp.local_addr().context("steering DNS address")?;
        let health = Health::default();
        let targets: Arc<[EdgeTarget]> = targets.into();
        let (stop_poll, stop_rx) = watch::channel(false);
        let poller = tokio::spawn(poll(
            targets.to_vec(),
            health.clone(),
            POLL_INTERVAL,
            stop_rx,
        ));
        let handler = SteeringHandler::new(topology, targets, health.clone())?;
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Ok(SteeringServer {
            addr,
            health,
            server,
            stop_poll,
            poller,
        })
    }

    /// Where it answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The edge health it steers by.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Stops answering and polling.
    pub async fn shutdown(mut self) {
        self.stop_poll.send_replace(true);
        let _ = self.poller.await;
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "steering DNS shutdown");
        }
    }
}

/// A UDP socket and a TCP listener on the same address; with port 0, tries
/// a few free UDP ports until TCP can take the same one.
async fn bind_pair(bind: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(bind)
            .await
            .with_context(|| format!("steering DNS: cannot bind UDP {bind}"))?;
        let addr = udp.local_addr().context("steering DNS address")?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if bind.port() == 0 => last_error = Some(e),
            Err(e) => {
                return Err(e).with_context(|| format!("steering DNS: cannot bind TCP {addr}"));
            }
        }
    }
    Err(anyhow::anyhow!(
        "steering DNS: no port free for both UDP and TCP on {}: {:?}",
        bind.ip(),
        last_error
    ))
}
