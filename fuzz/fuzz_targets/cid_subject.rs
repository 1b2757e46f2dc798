//! CIDs and NATS subjects as text: parsing never panics, and what parses prints back to text
//! that parses to the same value.
#![no_main]

use cim_domain::{parse_cid, Subject};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(cid) = parse_cid(text) {
        assert_eq!(parse_cid(&cid.to_string()).ok(), Some(cid));
    }
    if let Ok(subject) = text.parse::<Subject>() {
        assert_eq!(subject.to_string().parse::<Subject>().ok(), Some(subject));
    }
});
