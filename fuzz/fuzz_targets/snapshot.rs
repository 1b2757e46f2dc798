//! A snapshot read back from the key-value bucket: any bytes. Decoding never panics, and what
//! decodes encodes to bytes that decode to the same snapshot.
#![no_main]

use cim_nats::store::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(snapshot) = Snapshot::decode(bytes) {
        let again = Snapshot::decode(&snapshot.encode().expect("a decoded snapshot encodes"))
            .expect("an encoded snapshot decodes");
        assert_eq!(again, snapshot);
    }
});
