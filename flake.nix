# The CIM as a Nix flake.
#
# Deliberately input-free for now, so it evaluates offline: it exposes the repository's WIT
# package and wadm manifests as paths other flakes can consume. Packages for the CLI, the host
# launcher and each provider, a devShell with the pinned toolchain, NixOS modules per provider
# and checks arrive with the Nix work (they need nixpkgs; see docs/operations.md).
{
  description = "Composable Information Machine on a wasmCloud 1.x lattice";

  outputs = { self }: {
    lib = {
      # The cim:ecs@0.1.0 WIT package (one file per interface, worlds.wit).
      wit = ./wit;
      # wadm manifests: published image refs and local file:// refs.
      manifests = {
        published = ./wadm/cim.wadm.yaml;
        local = ./wadm/local/cim.wadm.yaml;
      };
      # The Rust toolchain the workspace pins (rust-toolchain.toml).
      rustToolchain = "1.93.0";
    };
  };
}
