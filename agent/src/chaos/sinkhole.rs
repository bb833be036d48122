//! A DNS sinkhole for the `dns-sinkhole` fault: a resolver on loopback that answers every
//! address question with `0.0.0.0`, as a DNS firewall (or a Pi-hole) answers for a domain it
//! blocks. Workloads that use it and then connect to the answer should raise an egress alert
//! naming the blocked domain.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use hickory_proto::{
    op::{Message, MessageType, OpCode},
    rr::{RData, Record, RecordType, rdata},
};
use tokio::net::UdpSocket;

/// Where the sinkhole listens: a loopback address of its own, so it does not collide with a
/// local resolver on 127.0.0.1 or 127.0.0.53.
pub const RESOLVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 53, 1)), 53);
/// The address every name resolves to: connecting there reaches nothing off the host.
pub const SINKHOLE: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
/// TTL of the answers, seconds.
const TTL: u32 = 60;

/// The running resolver; dropping it stops it.
pub struct Sinkhole {
    answered: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sinkhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sinkhole {
    /// Listens on [`RESOLVER`].
    pub async fn start() -> std::io::Result<Sinkhole> {
        let socket = UdpSocket::bind(RESOLVER).await?;
        let answered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&answered);
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                let Some(answer) = answer(&buffer[..len]) else {
                    continue;
                };
                if socket.send_to(&answer, peer).await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Sinkhole { answered, task })
    }

    /// Questions answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

/// The sinkhole's answer to a query: `0.0.0.0` for A questions, no addresses for the others;
/// `None` for anything that is not a query.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    if query.metadata.message_type != MessageType::Query || query.metadata.op_code != OpCode::Query
    {
        return None;
    }
    let mut response = Message::response(query.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    for question in &query.queries {
        response.add_query(question.clone());
        if question.query_type() == RecordType::A {
            response.add_answer(Record::from_rdata(
                question.name().clone(),
                TTL,
                RData::A(rdata::A(SINKHOLE)),
            ));
        }
    }
    response.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use hickory_proto::{op::Query, rr::Name};

    use super::*;

    #[test]
    fn answers_every_address_question_with_the_sinkhole() {
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_str("c2.vigil-chaos.test.").unwrap(),
            RecordType::A,
        ));
        let bytes = answer(&query.to_vec().unwrap()).unwrap();
        let parsed = crate::egress::dns::parse_response(&bytes).unwrap();
        assert_eq!(parsed.name, "c2.vigil-chaos.test");
        assert_eq!(parsed.addresses, vec![(SINKHOLE.into(), TTL)]);
        assert_eq!(answer(&bytes), None, "a response is not answered");
        assert_eq!(answer(b"garbage"), None);
    }
}
