//! Generates `send_typed`, which sends the rules' `DocumentCommand`s through the typed import
//! `cim:document/commands`, from `wit/entities/document/`.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let language = cim_witgen::Language::load(&wit, &wit.join("entities/document"))
        .unwrap_or_else(|e| panic!("the WIT of document: {e}"));
    let rust = language
        .guest_client(
            "commands",
            "document-command",
            "bindings",
            "cim_model::document::DocumentCommand",
        )
        .unwrap_or_else(|e| panic!("the WIT of document: {e}"));
    for file in language.files() {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        wit.join("systems/systems.wit").display()
    );
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("client.rs"), rust).expect("writing the typed client");
}
