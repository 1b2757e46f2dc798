//! The body of a commit message (several events in one message) with any announced count.
//! Decoding never panics, and a decoded commit holds exactly the count it announced, in
//! consecutive versions.
#![no_main]

use cim_domain::EntityRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, Vec<u8>)| {
    let (count, body) = input;
    let entity = EntityRef::new("document", "fuzz").expect("a valid entity");
    if let Ok(events) = cim_nats::commit::decode(&entity, &count, &body) {
        assert_eq!(Ok(events.len()), count.trim().parse::<usize>());
        for pair in events.windows(2) {
            assert_eq!(pair[0].event.version + 1, pair[1].event.version);
        }
    }
});
