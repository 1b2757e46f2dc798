//! Every wadm manifest in the repository parses and passes wadm's own validation, and the local
//! and published manifests describe the same application.

use std::path::PathBuf;

use wadm_types::validation::{validate_manifest_file, ValidationFailureLevel};

fn manifests() -> Vec<PathBuf> {
    let root = cim_testkit::workspace_root().join("wadm");
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn every_manifest_is_valid() {
    let all = manifests();
    assert!(
        all.len() >= 2,
        "expected the local and published manifests: {all:?}"
    );
    for path in all {
        let (manifest, failures) = validate_manifest_file(&path)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let errors: Vec<_> = failures
            .iter()
            .filter(|f| matches!(f.level, ValidationFailureLevel::Error))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        assert_eq!(manifest.metadata.name, "cim", "{}", path.display());
        let links = manifest
            .spec
            .components
            .iter()
            .flat_map(|c| c.traits.iter().flatten())
            .filter(|t| t.trait_type == "link")
            .count();
        assert!(
            links >= 2,
            "{}: the entities are linked to the event store",
            path.display()
        );
    }
}

#[test]
fn local_and_published_manifests_differ_only_in_images_and_deployment_settings() {
    let root = cim_testkit::workspace_root().join("wadm");
    let strip = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter(|l| !l.trim_start().starts_with("image:"))
            // Where the graph database is and how to log in, which repositories may be built,
            // what the Nix sandbox lacks and the event store's own credentials differ per
            // deployment.
            .filter(|l| {
                ![
                    "uri:",
                    "user:",
                    "password_file:",
                    "database:",
                    "allowed_flake_refs:",
                    "extra_sandbox_paths:",
                    "endpoint:",
                    "chat_model:",
                    "nats_creds_file:",
                ]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
            })
            .map(str::to_owned)
            .collect()
    };
    let local = strip(std::fs::read_to_string(root.join("local/cim.wadm.yaml")).unwrap());
    let published = strip(std::fs::read_to_string(root.join("cim.wadm.yaml")).unwrap());
    assert_eq!(local, published);
}
