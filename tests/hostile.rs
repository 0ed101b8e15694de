//! The bad-input catalogue, on both stores: hostile requests to every public endpoint — huge
//! bodies, deep JSON, invalid UTF-8, negative and overflowing amounts, absurd dates, unknown
//! kinds and formats, forged signatures, request smuggling — each get a 4xx, and the
//! database is unchanged afterwards (every table a request could write to, counted).
#![allow(clippy::unwrap_used)]

mod common;

use common::{stdout, Running, TestDb};
use obole::provider::stripe::signature::sign;
use obole::provider::stripe::StripeSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_stores!(hostile_requests_get_a_4xx_and_change_nothing);

const SECRET: &str = "whsec_test_obole";
const BODY_MAX: usize = 64 * 1024;

/// Rows of every table a request could write to.
async fn snapshot(db: &TestDb) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in [
        "entries",
        "postings",
        "contributions",
        "donors",
        "stripe_events",
        "compliance_decisions",
        "reservations",
        "report_access",
    ] {
        counts.push((
            table,
            db.count(&format!("SELECT count(*) FROM {table}")).await,
        ));
    }
    counts
}

/// A gift by API whose `field` is replaced by `value`.
fn gift_with(field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut gift = serde_json::json!({
        "method": "cheque",
        "amount": "250.00",
        "received": "2027-03-02",
        "reference": "H-1",
        "donor": {"name": "Anne Petit", "email": "anne@example.fr",
                  "address": {"line1": "3 rue Garibaldi", "postal_code": "69003", "city": "Lyon", "country": "FR"}},
        "declaration": {"nationality": "FR", "attestations": ["natural_person", "own_funds"]}
    });
    gift[field] = value;
    serde_json::to_vec(&gift).unwrap()
}

/// One hostile request: what it tries, method, path, headers, body.
type Case<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, String)>, Vec<u8>);

fn deep_json(depth: usize) -> Vec<u8> {
    let mut body = "[".repeat(depth).into_bytes();
    body.extend("]".repeat(depth).into_bytes());
    body
}

async fn hostile_requests_get_a_4xx_and_change_nothing(db: &TestDb) {
    db.campaign("printemps-2027").await;
    let token = stdout(&db.obole(&[
        "token",
        "create",
        "--campaign",
        "printemps-2027",
        "--role",
        "treasurer",
    ]))
    .trim()
    .to_owned();
    let server = Running::start(
        db,
        false,
        StripeSettings::new(Some(SECRET), None, 300, None).unwrap(),
        BODY_MAX,
    )
    .await;
    let before = snapshot(db).await;
    let now = {
        use obole::clock::Clock;
        db.clock.now().timestamp()
    };
    let signed = |body: &[u8]| sign(body, &[SECRET], now);
    // Valid but for `\ud800`, which no UTF-8 string can hold (found by fuzzing).
    const LONE_SURROGATE_EVENT: &[u8] = br#"{"id":"evt_1","object":"event","type":"charge.succeeded","created":1,"livemode":false,"request":{"id":"\ud800"},"data":{"object":{"id":"ch_1"}}}"#;
    let api = "/api/v1/campaigns/printemps-2027/contributions";
    let bearer = format!("Bearer {token}");
    let json = "application/json";
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<Case> = vec![
        (
            "webhook: unsigned",
            "POST",
            "/webhooks/stripe",
            vec![],
            b"{\"id\":\"evt_1\"}".to_vec(),
        ),
        (
            "webhook: a garbled signature",
            "POST",
            "/webhooks/stripe",
            vec![("stripe-signature", "t=abc,v1=zz".into())],
            b"{}".to_vec(),
        ),
        (
            "webhook: deep JSON, signed",
            "POST",
            "/webhooks/stripe",
            vec![("stripe-signature", signed(&deep_json(20_000)))],
            deep_json(20_000),
        ),
        (
            "webhook: invalid UTF-8, signed",
            "POST",
            "/webhooks/stripe",
            vec![("stripe-signature", signed(b"\xff\xfe{\"id\":1}"))],
            b"\xff\xfe{\"id\":1}".to_vec(),
        ),
        (
            "webhook: a lone surrogate in a field Obole does not read, signed",
            "POST",
            "/webhooks/stripe",
            vec![("stripe-signature", signed(LONE_SURROGATE_EVENT))],
            LONE_SURROGATE_EVENT.to_vec(),
        ),
        (
            "webhook: SQL in an unsigned event id",
            "POST",
            "/webhooks/stripe",
            vec![],
            b"{\"id\":\"evt_1'; DROP TABLE entries;--\"}".to_vec(),
        ),
        (
            "API: no token",
            "POST",
            api,
            vec![("content-type", json.into())],
            gift_with("amount", "250.00".into()),
        ),
        (
            "API: a negative amount",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("amount", "-10.00".into()),
        ),
        (
            "API: an overflowing amount",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("amount", "99999999999999999999999999.00".into()),
        ),
        (
            "API: an amount as a float",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("amount", serde_json::json!(250.5)),
        ),
        (
            "API: an amount in exponent form",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("amount", "1e5".into()),
        ),
        (
            "API: 30 February",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("received", "2027-02-30".into()),
        ),
        (
            "API: the year 99999",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("received", "99999-01-01".into()),
        ),
        (
            "API: an unknown method",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            gift_with("method", "bitcoin".into()),
        ),
        (
            "API: deep JSON",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            deep_json(20_000),
        ),
        (
            "API: invalid UTF-8",
            "POST",
            api,
            vec![("authorization", bearer.clone())],
            b"{\"method\":\"\xff\"}".to_vec(),
        ),
        (
            "API: another campaign's path",
            "POST",
            "/api/v1/campaigns/other/contributions",
            vec![("authorization", bearer.clone())],
            gift_with("amount", "250.00".into()),
        ),
        (
            "report: an unknown kind",
            "GET",
            "/api/v1/campaigns/printemps-2027/reports/payroll",
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (
            "report: 45 Smarch",
            "GET",
            "/api/v1/campaigns/printemps-2027/reports/summary?as_of=2027-13-45",
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (
            "report: the year 99999",
            "GET",
            "/api/v1/campaigns/printemps-2027/reports/summary?as_of=99999-01-01",
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (
            "report: an unknown format",
            "GET",
            "/api/v1/campaigns/printemps-2027/reports/summary?format=exe",
            vec![("authorization", bearer.clone())],
            vec![],
        ),
        (
            "report: a wrong token",
            "GET",
            "/api/v1/campaigns/printemps-2027/reports/summary",
            vec![("authorization", "Bearer obole_wrong".into())],
            vec![],
        ),
        (
            "donate: no anti-forgery token",
            "POST",
            "/donate/printemps-2027",
            vec![("content-type", form.into())],
            b"amount=-10&name=%3Cscript%3E".to_vec(),
        ),
        (
            "donate: invalid UTF-8",
            "POST",
            "/donate/printemps-2027",
            vec![("content-type", form.into())],
            b"amount=\xff\xfe".to_vec(),
        ),
        (
            "donate: an unknown campaign",
            "GET",
            "/donate/no-such-campaign",
            vec![],
            vec![],
        ),
        (
            "treasurer: a wrong token",
            "POST",
            "/treasurer/printemps-2027/login",
            vec![("content-type", form.into())],
            b"token=obole_wrong".to_vec(),
        ),
    ];
    let http = reqwest::Client::new();
    for (what, method, path, headers, body) in cases {
        let mut request = http.request(method.parse().unwrap(), format!("{}{path}", server.base));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!((400..500).contains(&status), "{what}: {status} {text}");
        assert!(
            !text.trim().is_empty(),
            "{what}: {status} with an empty body"
        );
    }

    // A body over the limit, over raw TCP: the server answers from the announced length
    // and closes, so a client still sending the rest (reqwest) may see the connection reset
    // before the answer.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        BODY_MAX * 16
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'{'; 1024]).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = stream.read(&mut answer).await.unwrap();
    let response = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "a body over the limit: {response}"
    );

    // Request smuggling: a body length given twice, two ways. The server refuses it.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 64];
    let read = stream.read(&mut answer).await.unwrap();
    let status_line = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(
        status_line.starts_with("HTTP/1.1 4"),
        "smuggling: {status_line}"
    );

    assert_eq!(snapshot(db).await, before, "the database is unchanged");
    server.shutdown().await;
}
