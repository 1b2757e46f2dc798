//! A command as a caller sends it: any name, any JSON payload bytes, decoded into the document
//! and package entities' commands. Decoding never panics; a decoded command encodes again and
//! decodes to the same command.
#![no_main]

use cim_domain::EventCodec;
use cim_model::document::DocumentCommand;
use cim_model::package::PackageCommand;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8])| {
    let (name, payload) = input;
    if let Ok(command) = EventCodec::decode::<DocumentCommand>(name, payload) {
        let (name, bytes) = EventCodec::encode(&command).expect("a decoded command encodes");
        let again: DocumentCommand =
            EventCodec::decode(name.as_str(), &bytes).expect("an encoded command decodes");
        assert_eq!(again, command);
    }
    if let Ok(command) = EventCodec::decode::<PackageCommand>(name, payload) {
        let (name, bytes) = EventCodec::encode(&command).expect("a decoded command encodes");
        let again: PackageCommand =
            EventCodec::decode(name.as_str(), &bytes).expect("an encoded command decodes");
        assert_eq!(again, command);
    }
});
