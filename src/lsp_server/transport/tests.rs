use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::lsp_server::server::ServerOptions;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn request(id: i64) -> Vec<u8> {
    framed(json!({"jsonrpc": "2.0", "id": id, "method": "claude/metrics"}).to_string().as_bytes())
}

/// The request ids, or the framing errors, `bytes` decode to.
fn summary(bytes: &[u8]) -> Vec<Result<Id, FrameError>> {
    decode_frames(bytes)
        .into_iter()
        .map(|decoded| match decoded? {
            Incoming::Request(request) => Ok(request.id().cloned().unwrap_or(Id::Null)),
            other => panic!("not a request: {other:?}"),
        })
        .collect()
}

/// (code, id) of each refusal a body gets.
type Refusals = Vec<(i64, Id)>;

fn refusals(body: &[u8]) -> Refusals {
    match decode_message(body) {
        Incoming::Rejected(replies) => replies
            .iter()
            .map(|reply| (reply.error().unwrap().code.code(), reply.id().clone()))
            .collect(),
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn frames_follow_each_other_in_any_header_case_with_a_content_type() {
    let mut bytes = request(1);
    bytes.extend_from_slice(b"\r\n");
    let body = json!({"jsonrpc": "2.0", "id": "two", "method": "x"}).to_string();
    bytes.extend_from_slice(
        format!(
            "content-length: {}\r\nCONTENT-TYPE: application/vscode-jsonrpc; charset=utf8\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    bytes.extend(request(3));
    assert_eq!(
        summary(&bytes),
        [Ok(Id::Number(1)), Ok(Id::String("two".into())), Ok(Id::Number(3))]
    );
}

#[test]
fn bytes_arriving_one_at_a_time_give_the_same_frames() {
    let mut bytes = request(1);
    bytes.extend_from_slice(b"garbage\r\n");
    bytes.extend(request(2));
    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    for byte in &bytes {
        decoder.push(std::slice::from_ref(byte));
        while let Some(frame) = decoder.next_frame() {
            frames.push(frame.map(|body| body.len()));
        }
    }
    assert_eq!(decoder.finish(), None);
    let length = request(1).len() - "Content-Length: 47\r\n\r\n".len();
    assert_eq!(frames, [Ok(length), Err(FrameError::Garbage), Ok(length)]);
}

#[test]
fn garbage_and_broken_headers_are_skipped_up_to_the_next_frame() {
    let cases: [(&[u8], FrameError); 6] = [
        (b"hello world\r\n", FrameError::Garbage),
        (b"\x00\xff binary\n", FrameError::Garbage),
        (b"Content-Type: application/vscode-jsonrpc\r\n\r\n{}", FrameError::MissingLength),
        (b"Content-Length: 12x\r\n\r\n{}", FrameError::BadLength("12x".into())),
        (b"Content-Length: 99999999999999999999999\r\n\r\n", FrameError::TooLarge(u64::MAX)),
        (
            b"Content-Length: 2\r\nContent-Type: text/plain; charset=latin1\r\n\r\n{}",
            FrameError::Charset("latin1".into()),
        ),
    ];
    for (bad, error) in cases {
        let mut bytes = request(1);
        bytes.extend_from_slice(bad);
        bytes.extend(request(2));
        let expected = [Ok(Id::Number(1)), Err(error), Ok(Id::Number(2))];
        assert_eq!(summary(&bytes), expected, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_length_over_the_limit_is_refused_without_reading_the_body() {
    let mut bytes = format!("Content-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes();
    bytes.extend(request(7));
    assert_eq!(
        summary(&bytes),
        [Err(FrameError::TooLarge(MAX_BODY as u64 + 1)), Ok(Id::Number(7))]
    );
}

#[test]
fn the_input_ending_inside_a_frame_is_reported_once() {
    let whole = request(1);
    assert_eq!(summary(&whole[..whole.len() - 3]), [Err(FrameError::Truncated)]);
    assert_eq!(summary(b"Content-Len"), [Err(FrameError::Truncated)]);
    assert_eq!(summary(b"\r\n\r\n"), []);
}

#[test]
fn malformed_messages_get_the_spec_error_with_the_id_when_it_can_be_read() {
    let parse = -32700;
    let invalid = -32600;
    let n = |id| Id::Number(id);
    let cases: Vec<(Vec<u8>, Refusals)> = vec![
        (br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#.to_vec(), vec![(invalid, Id::Null)]),
        (br#"{"jsonrpc":"2.0","id":true,"method":"x"}"#.to_vec(), vec![(invalid, Id::Null)]),
        (
            br#"{"jsonrpc":"2.0","id":9223372036854775808,"method":"x"}"#.to_vec(),
            vec![(invalid, Id::Null)],
        ),
        (br#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#.to_vec(), vec![(invalid, Id::Null)]),
        (br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#.to_vec(), vec![(invalid, Id::Null)]),
        (b"not json".to_vec(), vec![(parse, Id::Null)]),
        (br#"{"jsonrpc":"2.0","id":3,"meth"#.to_vec(), vec![(parse, Id::Null)]),
        (br#"{"jsonrpc":"2.0","id":4,"method":5}"#.to_vec(), vec![(invalid, n(4))]),
        (br#"{"jsonrpc":"1.0","id":5,"method":"x"}"#.to_vec(), vec![(invalid, n(5))]),
        (br#"{"id":6,"method":"x"}"#.to_vec(), vec![(invalid, n(6))]),
        (br#"{"jsonrpc":"2.0","id":7,"method":"x","params":3}"#.to_vec(), vec![(invalid, n(7))]),
        (br#"{"jsonrpc":"2.0","id":8}"#.to_vec(), vec![(invalid, n(8))]),
        (br#"42"#.to_vec(), vec![(invalid, Id::Null)]),
        (
            br#"[{"jsonrpc":"2.0","id":9,"method":"x"},{"jsonrpc":"2.0","id":"ten","method":"y"},{"jsonrpc":"2.0","method":"z"}]"#.to_vec(),
            vec![(invalid, n(9)), (invalid, Id::String("ten".into()))],
        ),
        (b"[]".to_vec(), vec![(invalid, Id::Null)]),
        (
            br#"{"jsonrpc":"2.0","id":11,"method":"x","params":{"a":"\ud800"}}"#.to_vec(),
            vec![(invalid, n(11))],
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"x\",\"params\":{\"a\":\"\xff\xfe\"}}".to_vec(),
            vec![(invalid, n(12))],
        ),
        (b"[\"\xff\"]".to_vec(), vec![(parse, Id::Null)]),
    ];
    for (body, expected) in cases {
        assert_eq!(refusals(&body), expected, "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn refusals_carry_kind_retryable_and_hint() {
    let reply = &match decode_message(b"{") {
        Incoming::Rejected(replies) => replies,
        other => panic!("{other:?}"),
    }[0];
    let wire = serde_json::to_value(reply).unwrap();
    assert_eq!(wire["id"], Value::Null);
    assert_eq!(wire["error"]["data"]["kind"], "parse_error");
    assert_eq!(wire["error"]["data"]["retryable"], false);
    assert!(wire["error"]["data"]["hint"].as_str().unwrap().contains("Content-Length"));
}

#[test]
fn valid_messages_pass_and_bad_responses_fail_their_request() {
    for body in [
        json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        json!({"jsonrpc": "2.0", "id": "s", "method": "shutdown", "params": null}),
        json!({"jsonrpc": "2.0", "id": -4, "method": "x", "params": [1]}),
    ] {
        assert!(
            matches!(decode_message(body.to_string().as_bytes()), Incoming::Request(_)),
            "{body}"
        );
    }
    let good = json!({"jsonrpc": "2.0", "id": 1, "result": null});
    let Incoming::Response(response) = decode_message(good.to_string().as_bytes()) else {
        panic!("not a response");
    };
    assert!(response.is_ok());
    // Both result and error: the pending request fails instead of waiting forever.
    let bad = json!({"jsonrpc": "2.0", "id": 2, "result": 1, "error": {"code": 1, "message": "m"}});
    let Incoming::Response(response) = decode_message(bad.to_string().as_bytes()) else {
        panic!("not a response");
    };
    assert_eq!(
        (response.id(), response.error().map(|e| e.code.code())),
        (&Id::Number(2), Some(-32600))
    );
    // No usable id: dropped, and never answered.
    let lost = json!({"jsonrpc": "2.0", "id": 2.5, "result": 1});
    assert!(
        matches!(decode_message(lost.to_string().as_bytes()), Incoming::Rejected(r) if r.is_empty())
    );
}

/// The server's answers, read off the client end of a duplex.
async fn read_answers(client: &mut DuplexStream, count: usize) -> Vec<Value> {
    let mut decoder = FrameDecoder::default();
    let mut answers = Vec::new();
    let mut chunk = [0; 1024];
    while answers.len() < count {
        while let Some(frame) = decoder.next_frame() {
            answers.push(serde_json::from_slice(&frame.unwrap()).unwrap());
        }
        if answers.len() == count {
            break;
        }
        let read = client.read(&mut chunk).await.unwrap();
        assert_ne!(read, 0, "the server closed its output early: {answers:?}");
        decoder.push(&chunk[..read]);
    }
    answers
}

/// The real server on a duplex of `capacity` bytes: the client end, the server task, its cache.
fn start(capacity: usize) -> (DuplexStream, tokio::task::JoinHandle<Ending>, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let options = ServerOptions { cache_dir: cache.path().to_path_buf(), log: None };
    let (client, server_end) = tokio::io::duplex(capacity);
    let (read, write) = tokio::io::split(server_end);
    (client, tokio::spawn(crate::lsp_server::server::serve(read, write, options)), cache)
}

#[tokio::test]
async fn over_a_duplex_every_bad_message_is_answered_and_reading_goes_on_until_eof() {
    let (mut client, server, _cache) = start(64);

    let mut bytes = b"garbage first\r\n".to_vec();
    bytes.extend(framed(br#"{"jsonrpc":"2.0","id":1.5,"method":"claude/metrics"}"#));
    bytes.extend(request(1));
    bytes.extend(framed(b"{oops"));
    bytes.extend(framed(br#"{"jsonrpc":"2.0","id":2,"method":"$/foo"}"#));
    bytes.extend(framed(br#"{"jsonrpc":"2.0","method":"$/foo"}"#));
    bytes.extend(request(3));
    // Small writes, so frames arrive in pieces.
    for piece in bytes.chunks(7) {
        client.write_all(piece).await.unwrap();
    }
    let answers = read_answers(&mut client, 6).await;
    let mut codes: Vec<(String, i64)> = answers
        .iter()
        .map(|a| (a["id"].to_string(), a["error"]["code"].as_i64().unwrap()))
        .collect();
    codes.sort();
    // Before `initialize`, tower-lsp-server answers requests with -32002. The layer's own
    // refusals and the service's answers come in no set order.
    let mut expected = [
        ("null", -32700),
        ("null", -32600),
        ("1", -32002),
        ("null", -32700),
        ("2", -32601),
        ("3", -32002),
    ]
    .map(|(id, code)| (id.to_owned(), code));
    expected.sort();
    assert_eq!(codes, expected);
    drop(client);
    let ending = tokio::time::timeout(Duration::from_secs(60), server).await.unwrap().unwrap();
    assert_eq!(ending, Ending::Gone);
}

#[tokio::test]
async fn exit_ends_serving_with_the_input_still_open() {
    let (mut client, server, _cache) = start(1024);
    client.write_all(&framed(br#"{"jsonrpc":"2.0","method":"exit"}"#)).await.unwrap();
    let ending = tokio::time::timeout(Duration::from_secs(60), server).await.unwrap().unwrap();
    // No `shutdown` came first: LSP's exit code 1.
    assert_eq!(ending, Ending::Exit { after_shutdown: false });
    assert_eq!(ending.exit_code(), 1);
    drop(client);
}
