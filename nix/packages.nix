# The CIM's packages, built from the Rust workspace with nixpkgs' rustPlatform and the pinned
# toolchain (`rustToolchain`: rust-toolchain.toml's 1.93.0 via rust-overlay in flake.nix;
# nixpkgs' own rustc is another version, and 1.94+ cannot compile wasmcloud-host, ADR 0001).
#   cim                    every native binary of the workspace in one bin/ (one cargo build):
#                          the CLI expects cim-host, wadm and the providers next to it
#   cim-host, wadm, <provider>
#                          one binary each, linked from `cim`
#   <provider>-archive     share/cim/providers/<provider>.par.gz, packed by `cim pack`
#   components             share/cim/components/*.wasm (wasm32-wasip2, profile `component`)
# The attribute names depend on the source tree only, never on `pkgs`, so the flake's shape
# can be checked without nixpkgs (nix/tests/flake.nix).
{
  pkgs,
  cimLib,
  rustToolchain ? null,
}:
let
  inherit (pkgs) lib;
  rustPlatform =
    if rustToolchain == null then
      pkgs.rustPlatform
    else
      pkgs.makeRustPlatform {
        cargo = rustToolchain;
        rustc = rustToolchain;
      };
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;
  providers = cimLib.subdirs ../providers;
  components = cimLib.subdirs ../components;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
      ../providers
      ../components
      ../tests
      ../wit
    ];
  };
  common = {
    inherit version src;
    # Every dependency comes from crates.io (no git sources), so the lock file is enough.
    cargoLock.lockFile = ../Cargo.lock;
    # The tests need nats-server and a graph database; scripts/test runs them.
    doCheck = false;
  };
  meta = {
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
  };

  workspace = rustPlatform.buildRustPackage (
    common
    // {
      pname = "cim";
      cargoBuildFlags = lib.concatMap (p: [
        "-p"
        p
      ]) ([ "cim" "cim-host" "cim-wadm" ] ++ providers);
      meta = meta // {
        description = "The CIM: CLI, wasmCloud 1.9.x host, wadm and capability providers";
        mainProgram = "cim";
      };
    }
  );

  bin =
    exe:
    pkgs.runCommand "${exe}-${version}" { meta = meta // { mainProgram = exe; }; } ''
      mkdir -p $out/bin
      ln -s ${workspace}/bin/${exe} $out/bin/${exe}
    '';

  # The archive hides the binary's store references inside gzip, so they are recorded in
  # nix-support/ to keep the binary's closure (its glibc) alive wherever the archive goes.
  archive =
    name:
    pkgs.runCommand "${name}-archive-${version}" { inherit meta; } ''
      mkdir -p $out/share/cim/providers $out/nix-support
      ${workspace}/bin/cim pack --name ${name} --binary ${workspace}/bin/${name} \
        --out-dir $out/share/cim/providers
      test -s $out/share/cim/providers/${name}.par.gz
      echo ${workspace}/bin/${name} > $out/nix-support/runtime-closure
    '';

  componentsPackage = rustPlatform.buildRustPackage (
    common
    // {
      pname = "cim-components";
      auditable = false;
      buildPhase = ''
        runHook preBuild
        cargo build --frozen -j $NIX_BUILD_CORES --target wasm32-wasip2 --profile component \
          --target-dir target-components ${lib.concatMapStringsSep " " (c: "-p ${c}") components}
        runHook postBuild
      '';
      installPhase = ''
        runHook preInstall
        mkdir -p $out/share/cim/components
        ${lib.concatMapStringsSep "\n" (
          c:
          "cp target-components/wasm32-wasip2/component/${
            builtins.replaceStrings [ "-" ] [ "_" ] c
          }.wasm $out/share/cim/components/${c}.wasm"
        ) components}
        runHook postInstall
      '';
      meta = meta // {
        description = "The CIM's Wasm components (wasm32-wasip2)";
      };
    }
  );
in
{
  default = workspace;
  cim = workspace;
  cim-host = bin "cim-host";
  wadm = bin "wadm";
  components = componentsPackage;
}
// builtins.listToAttrs (
  builtins.concatMap (name: [
    {
      inherit name;
      value = bin name;
    }
    {
      name = "${name}-archive";
      value = archive name;
    }
  ]) providers
)
