//! The nix-build provider's inputs from callers and config: flake refs, attributes and the
//! allow-list. Parsing never panics, and a flake ref's normal form is a fixed point.
#![no_main]

use build_nix::flakeref::{AllowList, Attribute, FlakeRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(flake) = FlakeRef::parse(text) {
        let normal = flake.to_string();
        let again = FlakeRef::parse(&normal).expect("a normal form parses");
        assert_eq!(again.to_string(), normal);
    }
    let _ = Attribute::parse(text);
    if let Ok(list) = AllowList::parse(text) {
        if let Ok(flake) = FlakeRef::parse(text) {
            let _ = list.allows(&flake);
        }
    }
});
