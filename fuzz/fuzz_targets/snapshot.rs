//! A snapshot read back from the key-value bucket: any bytes. Decoding the stored record
//! never panics, and what decodes encodes to bytes that decode to the same snapshot. The
//! same bytes as an entity component's snapshot body (the state inside the record, ADR 0011)
//! of a document and of a package: decoding never panics, and a body that decodes encodes to
//! one that decodes to the same state and recent commands.
#![no_main]

use cim_domain::snapshot::{decode_body, encode_body};
use cim_domain::{Aggregate, EntityRef};
use cim_model::document::Document;
use cim_model::package::Package;
use cim_nats::store::Snapshot;
use libfuzzer_sys::fuzz_target;

fn body_round_trips<A: Aggregate + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let entity = EntityRef::new(A::KIND, "fuzzed").expect("a valid entity");
    if let Ok((state, commands)) = decode_body::<A>(&entity, bytes) {
        let encoded = encode_body(&entity, &state, &commands).expect("a decoded body encodes");
        let (again, again_commands) =
            decode_body::<A>(&entity, &encoded).expect("an encoded body decodes");
        assert_eq!(again, state);
        assert_eq!(again_commands, commands);
    }
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(snapshot) = Snapshot::decode(bytes) {
        let again = Snapshot::decode(&snapshot.encode().expect("a decoded snapshot encodes"))
            .expect("an encoded snapshot decodes");
        assert_eq!(again, snapshot);
    }
    body_round_trips::<Document>(bytes);
    body_round_trips::<Package>(bytes);
});
