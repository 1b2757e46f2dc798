# The development shell (`nix develop`): the Rust toolchain pinned by rust-toolchain.toml
# (1.93.0 with clippy, rustfmt and wasm32-wasip2), nats-server and the NATS/wasmCloud tools.
{ pkgs, rustToolchain }:
let
  inherit (pkgs) lib;
  # `wash`, the wasmCloud shell, where this nixpkgs still has it (an alias may throw).
  wash = builtins.tryEval (pkgs.wash-cli or null);
in
pkgs.mkShell {
  packages =
    [
      rustToolchain
      pkgs.nats-server
      pkgs.natscli
      pkgs.wasm-tools
      pkgs.pkg-config
      # scripts/bootstrap and `cim up` install ArcadeDB (the local graph server) from PyPI.
      pkgs.python3
    ]
    ++ lib.optional (wash.success && wash.value != null) wash.value;

  shellHook = ''
    export CARGO_TARGET_DIR="''${CARGO_TARGET_DIR:-$HOME/.cache/cim/target}"
    echo "cim devShell: $(rustc --version); $(nats-server --version)" >&2
  '';
}
