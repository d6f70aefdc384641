//! The JSON-RPC message reader and the event-stream splitter never panic, and never accept what
//! they should not: a message warden reads is one that serde_json reads too (warden is stricter,
//! never looser); its canonical form reads back to itself; an event stream is cut into the same
//! events however its bytes arrive, and nothing is lost or added.
//!
//! Input: any bytes, read as a message body and as a stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::protocol::canonical::canonical;
use warden::protocol::json::parse;
use warden::protocol::message::{message, read};
use warden::protocol::sse::EventSplitter;
use warden::protocol::Protocol;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = read(data) {
        // Checked by skipping, not by reading into serde_json::Value: with `raw_value`, Value
        // gives a key `$serde_json::private::RawValue` a meaning no other JSON reader gives it.
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            "accepted what serde_json refuses: {data:?}"
        );
        let text = canonical(&tree);
        let again = parse(text.as_bytes()).expect("canonical JSON reads back");
        assert_eq!(canonical(&again), text);
        for protocol in [Protocol::Mcp, Protocol::A2a] {
            if let Ok(m) = message(&tree, protocol) {
                let s = m.summary();
                assert_eq!(&*s.method, m.method);
                if let Some(d) = &s.args_sha256 {
                    assert_eq!(d.len(), 64);
                }
            }
        }
    }

    let mut whole = EventSplitter::new(1 << 20);
    let mut events = whole.push(data).unwrap_or_default();
    events.extend(whole.finish());
    let joined: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
    assert_eq!(joined, data, "the splitter lost or added bytes");
    let mut bytewise = EventSplitter::new(1 << 20);
    let mut pieces = Vec::new();
    for b in data.chunks(3) {
        pieces.extend(bytewise.push(b).unwrap_or_default());
    }
    pieces.extend(bytewise.finish());
    assert_eq!(pieces, events, "events depend on how the bytes arrive");
});
