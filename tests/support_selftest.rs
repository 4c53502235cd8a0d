//! Proves that the test-support helpers in `tests/common` behave as documented: the authoritative
//! server's UDP/TCP answers, query log and knobs (blackhole, no TCP, REFUSED, truncation, delay,
//! whole-label counting, stopping), and the raw client's EDE helpers and reply-id check.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::auth::{AuthOptions, AuthServer, Proto, UdpMode, zone};
use common::client::{self, Q, a_addrs, rcode};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn corp() -> String {
    zone(
        "corp.example.",
        "www 60 IN A 10.1.0.1\n\
         mail 60 IN A 10.1.0.2\n\
         v6 60 IN AAAA fd00::1",
    )
}

fn short() -> Q {
    Q { timeout: Duration::from_millis(500), ..Q::default() }
}

#[tokio::test]
async fn answers_over_udp_and_tcp_and_logs_protocol() {
    let text = corp();
    let srv = AuthServer::start(&[("corp.example.", &text)]).await;

    let q = Q { do_bit: true, cd: true, ..Q::default() };
    let r1 = client::udp(srv.addr(), "WWW.corp.example", RecordType::A, &q).await.expect("udp");
    assert_eq!(rcode(&r1), ResponseCode::NoError);
    assert_eq!(a_addrs(&r1), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    let r = client::tcp(srv.addr(), "mail.corp.example.", RecordType::A, &Q::default()).await.expect("tcp");
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 2)]);
    let r = client::udp(srv.addr(), "v6.corp.example", RecordType::AAAA, &Q::default()).await.expect("aaaa");
    assert_eq!(client::aaaa_addrs(&r), vec!["fd00::1".parse::<std::net::Ipv6Addr>().unwrap()]);

    let log = srv.queries();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].name, "www.corp.example");
    assert_eq!(log[0].qtype, RecordType::A);
    assert_eq!(log[0].proto, Proto::Udp);
    assert!(log[0].do_bit && log[0].cd);
    assert_eq!(log[0].id, r1.metadata.id);
    assert_eq!(log[1].name, "mail.corp.example");
    assert_eq!(log[1].proto, Proto::Tcp);
    assert!(!log[1].do_bit && !log[1].cd);
    assert_ne!(log[1].src_port, 0);
    assert_eq!(log[2].id, r.metadata.id);
    assert_eq!(srv.count(), 3);
    srv.reset();
    assert_eq!(srv.count(), 0);
    srv.stop().await;
}

#[tokio::test]
async fn nxdomain_for_missing_name() {
    let text = corp();
    let srv = AuthServer::start(&[("corp.example.", &text)]).await;
    let r = client::udp(srv.addr(), "nope.corp.example", RecordType::A, &Q::default()).await.expect("udp");
    assert_eq!(rcode(&r), ResponseCode::NXDomain);
    assert!(r.answers.is_empty());
    assert!(r.authorities.iter().any(|rr| rr.record_type() == RecordType::SOA));
}

#[tokio::test]
async fn blackhole_udp_still_answers_tcp() {
    let text = corp();
    let opts = AuthOptions { udp: UdpMode::Blackhole, ..AuthOptions::default() };
    let srv = AuthServer::start_with(opts, &[("corp.example.", &text)]).await;
    let err = client::udp(srv.addr(), "www.corp.example", RecordType::A, &short())
        .await
        .expect_err("blackholed UDP must not answer");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let r = client::tcp(srv.addr(), "www.corp.example", RecordType::A, &short()).await.expect("tcp");
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(srv.count(), 1, "blackholed UDP queries are never seen");
}

#[tokio::test]
async fn tcp_disabled_refuses_connections() {
    let text = corp();
    let opts = AuthOptions { tcp: false, ..AuthOptions::default() };
    let srv = AuthServer::start_with(opts, &[("corp.example.", &text)]).await;
    assert!(client::udp(srv.addr(), "www.corp.example", RecordType::A, &short()).await.is_ok());
    assert!(client::tcp(srv.addr(), "www.corp.example", RecordType::A, &short()).await.is_err());
}

#[tokio::test]
async fn refuse_all_gives_refused() {
    let text = corp();
    let opts = AuthOptions { refuse_all: true, ..AuthOptions::default() };
    let srv = AuthServer::start_with(opts, &[("corp.example.", &text)]).await;
    for r in [
        client::udp(srv.addr(), "www.corp.example", RecordType::A, &Q::default()).await,
        client::tcp(srv.addr(), "www.corp.example", RecordType::A, &Q::default()).await,
    ] {
        let r = r.expect("reply");
        assert_eq!(rcode(&r), ResponseCode::Refused);
        assert!(r.answers.is_empty());
    }
    assert_eq!(srv.count(), 2);
}

#[tokio::test]
async fn truncate_udp_forces_tcp() {
    let text = corp();
    let opts = AuthOptions { truncate_udp: true, ..AuthOptions::default() };
    let srv = AuthServer::start_with(opts, &[("corp.example.", &text)]).await;
    let r = client::udp(srv.addr(), "www.corp.example", RecordType::A, &Q::default()).await.expect("udp");
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    let r = client::tcp(srv.addr(), "www.corp.example", RecordType::A, &Q::default()).await.expect("tcp");
    assert!(!r.metadata.truncation);
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    let protos: Vec<Proto> = srv.queries().iter().map(|q| q.proto).collect();
    assert_eq!(protos, vec![Proto::Udp, Proto::Tcp]);
}

#[tokio::test]
async fn count_under_matches_whole_labels() {
    let corp_text = corp();
    let other = zone("othercorp.example.", "www 60 IN A 10.2.0.1");
    let srv = AuthServer::start(&[("corp.example.", &corp_text), ("othercorp.example.", &other)]).await;
    for name in ["www.corp.example", "corp.example", "www.othercorp.example", "othercorp.example"] {
        client::udp(srv.addr(), name, RecordType::A, &Q::default()).await.expect(name);
    }
    let r = client::udp(srv.addr(), "www.othercorp.example", RecordType::A, &Q::default()).await.expect("other");
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 2, 0, 1)]);
    assert_eq!(srv.count(), 5);
    assert_eq!(srv.count_under("corp.example"), 2);
    assert_eq!(srv.count_under("CORP.example."), 2);
    assert_eq!(srv.count_under("othercorp.example"), 3);
    assert_eq!(srv.count_under("example"), 5);
    assert_eq!(srv.count_under("rp.example"), 0);
}

#[tokio::test]
async fn delay_option_delays_answers() {
    let text = corp();
    let opts = AuthOptions { delay: Some(Duration::from_millis(400)), ..AuthOptions::default() };
    let srv = AuthServer::start_with(opts, &[("corp.example.", &text)]).await;
    let start = Instant::now();
    let r = client::udp(srv.addr(), "www.corp.example", RecordType::A, &Q::default()).await.expect("udp");
    assert!(start.elapsed() >= Duration::from_millis(400), "{:?}", start.elapsed());
    assert_eq!(a_addrs(&r), vec![Ipv4Addr::new(10, 1, 0, 1)]);
    let err = client::udp(
        srv.addr(),
        "www.corp.example",
        RecordType::A,
        &Q { timeout: Duration::from_millis(100), ..Q::default() },
    )
    .await
    .expect_err("a 100 ms client timeout must expire before a 400 ms delay");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test]
async fn raw_udp_and_ede_helpers() {
    let text = corp();
    let srv = AuthServer::start(&[("corp.example.", &text)]).await;
    // Shorter than a DNS header: the server drops it silently.
    assert_eq!(client::send_raw_udp(srv.addr(), b"junk", Duration::from_millis(300)).await, None);
    // A valid query sent raw gets some reply back.
    let mut q = hickory_proto::op::Message::query();
    q.add_query(hickory_proto::op::Query::query("www.corp.example.".parse().unwrap(), RecordType::A));
    let reply = client::send_raw_udp(srv.addr(), &q.to_vec().unwrap(), Duration::from_secs(2)).await;
    let reply = hickory_proto::op::Message::from_vec(&reply.expect("reply")).expect("decodes");
    assert_eq!(reply.metadata.id, q.metadata.id);

    // EDE parsing on a hand-built message.
    let mut m = hickory_proto::op::Message::query();
    assert_eq!(client::ede(&m), None);
    let mut edns = hickory_proto::op::Edns::new();
    let mut data = 22u16.to_be_bytes().to_vec();
    data.extend_from_slice(b"no reachable authority");
    edns.options_mut().insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data));
    m.set_edns(edns);
    let m = hickory_proto::op::Message::from_vec(&m.to_vec().unwrap()).unwrap();
    assert_eq!(client::ede(&m), Some((22, "no reachable authority".to_string())));
}

#[tokio::test]
async fn drop_and_stop_shut_the_server_down() {
    let text = corp();
    let srv = AuthServer::start(&[("corp.example.", &text)]).await;
    let addr = srv.addr();
    assert!(client::udp(addr, "www.corp.example", RecordType::A, &short()).await.is_ok());
    drop(srv);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client::udp(addr, "www.corp.example", RecordType::A, &short()).await.is_err());
    assert!(client::tcp(addr, "www.corp.example", RecordType::A, &short()).await.is_err());

    let srv = AuthServer::start(&[("corp.example.", &text)]).await;
    let addr = srv.addr();
    srv.stop().await;
    assert!(client::tcp(addr, "www.corp.example", RecordType::A, &short()).await.is_err());
}

#[tokio::test]
async fn client_rejects_reply_with_wrong_id() {
    let fake = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = fake.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        if let Ok((n, peer)) = fake.recv_from(&mut buf).await {
            buf[0] ^= 0xff; // corrupt the id
            buf[2] |= 0x80; // QR=1
            let _ = fake.send_to(&buf[..n], peer).await;
        }
    });
    let err = client::udp(addr, "www.corp.example", RecordType::A, &short())
        .await
        .expect_err("mismatched id must be rejected");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}
