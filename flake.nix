# The CIM as a Nix flake. Thin: every output is built in nix/ (see docs/operations.md,
# "NixOS hosts", and docs/adr/0006-nixos-hosts.md).
#   packages.<system>     cim (CLI with host, wadm and providers), cim-host, wadm, one package
#                         and one <name>-archive (.par.gz) per provider, components (Wasm)
#   devShells.<system>    the pinned toolchain (rust-toolchain.toml), nats-server, NATS tools
#   nixosModules          host (a hardened cim-host service joining a lattice) and one module
#                         per provider, which labels that host and installs the archive
#   checks.<system>       library tests, a NixOS evaluation of the modules, the packages
#   lib                   the WIT package, the manifests, the toolchain pin, nix/lib.nix
# nix/lib.nix is pure (no nixpkgs): scripts/nix-check tests it and the shape of these outputs
# offline (nix/tests/flake.nix).
{
  description = "Composable Information Machine on a wasmCloud 1.x lattice";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    # The exact toolchain of rust-toolchain.toml (1.93.0 + wasm32-wasip2); no nixpkgs release
    # ships it (ADR 0001: 1.94+ cannot compile wasmcloud-host 0.27.1).
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      rust-overlay,
    }:
    let
      cimLib = import ./nix/lib.nix;
      pkgsFor = system: nixpkgs.legacyPackages.${system};
      rustToolchainFor =
        system: (rust-overlay.lib.mkRustBin { } (pkgsFor system)).fromRustupToolchainFile ./rust-toolchain.toml;
    in
    {
      lib = {
        # The cim:ecs@0.1.0 WIT package (one file per interface, worlds.wit).
        wit = ./wit;
        # wadm manifests: published image refs and local file:// refs.
        manifests = {
          published = ./wadm/cim.wadm.yaml;
          local = ./wadm/local/cim.wadm.yaml;
        };
        # The Rust toolchain the workspace pins (rust-toolchain.toml).
        rustToolchain = cimLib.toolchain.channel;
        # The pure helpers (labels, credential paths, host arguments, validation).
        cim = cimLib;
      };

      packages = cimLib.forSystems (
        system:
        import ./nix/packages.nix {
          inherit cimLib;
          pkgs = pkgsFor system;
          rustToolchain = rustToolchainFor system;
        }
      );

      devShells = cimLib.forSystems (system: {
        default = import ./nix/devshell.nix {
          pkgs = pkgsFor system;
          rustToolchain = rustToolchainFor system;
        };
      });

      nixosModules = import ./nix/modules {
        inherit cimLib;
        packagesFor = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system};
      };

      checks = cimLib.forSystems (
        system:
        import ./nix/checks.nix {
          inherit nixpkgs self system;
          pkgs = pkgsFor system;
        }
      );
    };
}
