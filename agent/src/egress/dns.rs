//! DNS responses the kernel side captured: parsed with hickory-proto into the question's name
//! and the addresses it resolves to, which become names of those addresses (`fd.sip.name`,
//! and the name in egress alerts) for as long as the answer's TTL.

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::RData,
};

/// What one DNS response says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The name asked for, lowercase, without the trailing dot.
    pub name: String,
    /// Every A and AAAA record of the answer (after any CNAMEs), with its TTL in seconds.
    pub addresses: Vec<(IpAddr, u32)>,
}

/// Parses a captured DNS message; `None` for queries, errors, truncated or malformed messages
/// and answers without addresses.
pub fn parse_response(bytes: &[u8]) -> Option<DnsAnswer> {
    let message = Message::from_vec(bytes).ok()?;
    if message.metadata.message_type != MessageType::Response
        || message.metadata.response_code != ResponseCode::NoError
    {
        return None;
    }
    let name = message
        .queries
        .first()?
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let addresses: Vec<(IpAddr, u32)> = message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some((IpAddr::V4(a.0), record.ttl)),
            RData::AAAA(aaaa) => Some((IpAddr::V6(aaaa.0), record.ttl)),
            _ => None,
        })
        .collect();
    (!name.is_empty() && !addresses.is_empty()).then_some(DnsAnswer { name, addresses })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use hickory_proto::{
        op::{Message, OpCode, Query},
        rr::{Name, RData, Record, RecordType, rdata},
    };

    use super::*;

    fn response(name: &str, answers: Vec<Record>) -> Vec<u8> {
        let mut message = Message::response(7, OpCode::Query);
        message.add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
        message.add_answers(answers);
        message.to_vec().unwrap()
    }

    #[test]
    fn reads_addresses_behind_cnames_with_their_ttls() {
        let question = Name::from_str("API.Payments.Example.com.").unwrap();
        let edge = Name::from_str("edge.cdn.example.net.").unwrap();
        let bytes = response(
            "API.Payments.Example.com.",
            vec![
                Record::from_rdata(question, 300, RData::CNAME(rdata::CNAME(edge.clone()))),
                Record::from_rdata(edge.clone(), 60, RData::A(rdata::A::new(192, 0, 2, 7))),
                Record::from_rdata(
                    edge,
                    30,
                    RData::AAAA(rdata::AAAA::from_str("2001:db8::7").unwrap()),
                ),
            ],
        );
        let answer = parse_response(&bytes).unwrap();
        assert_eq!(answer.name, "api.payments.example.com");
        assert_eq!(
            answer.addresses,
            vec![
                ("192.0.2.7".parse().unwrap(), 60),
                ("2001:db8::7".parse().unwrap(), 30)
            ]
        );
    }

    #[test]
    fn ignores_queries_errors_and_garbage() {
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_str("a.example.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(parse_response(&query.to_vec().unwrap()), None);
        assert_eq!(parse_response(&response("a.example.", Vec::new())), None);
        assert_eq!(parse_response(b"\x00\x01garbage"), None);
        assert_eq!(parse_response(&[]), None);
    }
}
