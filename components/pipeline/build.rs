//! Generates `send_typed`, which sends the rules' `PackageCommand`s through the typed import
//! `cim:package/commands`, from `wit/entities/package/`.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let language = cim_witgen::Language::load(&wit, &wit.join("entities/package"))
        .unwrap_or_else(|e| panic!("the WIT of package: {e}"));
    let rust = language
        .guest_client(
            "commands",
            "package-command",
            "bindings",
            "cim_model::package::PackageCommand",
        )
        .unwrap_or_else(|e| panic!("the WIT of package: {e}"));
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
