//! A fake authoritative DNS server for the DNS-failure fault.

use super::*;

/// A tiny authoritative DNS server on UDP: answers every A query with one
/// address (TTL 0, so the edge's resolver asks each time), and AAAA and
/// other queries with an empty answer.
pub(crate) struct FakeDns {
    pub(crate) addr: SocketAddr,
    pub(crate) answer: Ipv4Addr,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeDns {
    pub(crate) async fn start(addr: SocketAddr, answer: Ipv4Addr) -> FakeDns {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind fake DNS on {addr}: {e}"));
        let addr = socket.local_addr().expect("fake DNS address");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                // Errors on an unconnected UDP socket are per datagram.
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(reply) = dns_reply(&buf[..n], answer) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        FakeDns {
            addr,
            answer,
            task: Some(task),
        }
    }

    /// Stops answering and closes the socket: nothing listens on the port.
    pub(crate) async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Answers again, on the same port.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        *self = FakeDns::start(self.addr, self.answer).await;
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The reply to a one-question DNS query, or `None` if it is not one.
pub(crate) fn dns_reply(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut end = 12;
    loop {
        let len = usize::from(*query.get(end)?);
        end += 1;
        if len == 0 {
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        end += len;
    }
    let qtype = query.get(end..end + 2)?;
    let is_a = qtype == [0, 1];
    end += 4;
    if end > query.len() {
        return None;
    }
    let mut reply = Vec::with_capacity(end + 16);
    reply.extend_from_slice(&query[0..2]); // id
    reply.push(0x80 | (query[2] & 0x79) | 0x04); // QR, opcode, AA, RD
    reply.push(0x80); // RA, NOERROR
    reply.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..end]);
    if is_a {
        // Name (pointer to the question), A, IN, TTL 0, 4 bytes of address.
        reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        reply.extend_from_slice(&answer.octets());
    }
    Some(reply)
}
