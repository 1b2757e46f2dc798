# The main flake's outputs, evaluated offline: its inputs (nixpkgs, rust-overlay) are replaced
# by stand-ins that fail when touched, so this checks exactly what must not need nixpkgs —
# the inputs, lib, the names of every output, package and module, and that each module is a
# NixOS module function. Evaluates to { passed; summary; } or fails listing the mismatches.
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elemAt
    filter
    functionArgs
    head
    length
    lessThan
    map
    pathExists
    sort
    toJSON
    ;
  cim = import ../lib.nix;
  flake = import ../../flake.nix;
  offline = name: throw "nix/tests/shape.nix: ${name} is not available offline";
  standIn = name: {
    outPath = offline name;
    lib = offline "${name}.lib";
    legacyPackages = offline "${name}.legacyPackages";
  };
  outputs = flake.outputs {
    self = outputs // {
      outPath = ../..;
    };
    nixpkgs = standIn "nixpkgs";
    rust-overlay = standIn "rust-overlay";
  };
  sorted = sort lessThan;
  moduleArgs = {
    config = false;
    lib = false;
    pkgs = false;
  };
  modules = outputs.nixosModules;

  tests = [
    {
      name = "inputs";
      actual = attrNames flake.inputs;
      expected = [
        "nixpkgs"
        "rust-overlay"
      ];
    }
    {
      name = "rust-overlay follows nixpkgs";
      actual = flake.inputs.rust-overlay.inputs.nixpkgs.follows;
      expected = "nixpkgs";
    }
    {
      name = "outputs";
      actual = attrNames outputs;
      expected = [
        "checks"
        "devShells"
        "lib"
        "nixosModules"
        "packages"
      ];
    }
    {
      name = "lib keeps wit, manifests and rustToolchain";
      actual = [
        (pathExists (outputs.lib.wit + "/worlds.wit"))
        (pathExists outputs.lib.manifests.published)
        (pathExists outputs.lib.manifests.local)
        outputs.lib.rustToolchain
        (outputs.lib.cim.providerLabel "x")
      ];
      expected = [
        true
        true
        true
        cim.toolchain.channel
        "cim.provider.x"
      ];
    }
    {
      name = "systems";
      actual = map attrNames [
        outputs.packages
        outputs.devShells
        outputs.checks
      ];
      expected = [
        (sorted cim.systems)
        (sorted cim.systems)
        (sorted cim.systems)
      ];
    }
    {
      name = "a package and an archive per provider directory, the CLI, host, wadm, components";
      actual = attrNames outputs.packages.x86_64-linux;
      expected = sorted (
        [
          "cim"
          "cim-host"
          "components"
          "default"
          "wadm"
        ]
        ++ concatMap (p: [
          p
          "${p}-archive"
        ]) (cim.subdirs ../../providers)
      );
    }
    {
      name = "devShells and checks";
      actual = [
        (attrNames outputs.devShells.x86_64-linux)
        (attrNames outputs.checks.x86_64-linux)
      ];
      expected = [
        [ "default" ]
        [
          "cim"
          "components"
          "host-unit"
          "lib-tests"
        ]
      ];
    }
    {
      name = "nixosModules: host, default and one per provider";
      actual = attrNames modules;
      expected = sorted (
        [
          "default"
          "host"
        ]
        ++ cim.providerNames
      );
    }
    {
      name = "module keys (the host module is declared once however many are imported)";
      actual = map (n: modules.${n}.key) ([ "default" ] ++ cim.providerNames);
      expected = [ "cim/host" ] ++ map (n: "cim/provider/${n}") cim.providerNames;
    }
    {
      name = "every provider module imports the host module first";
      actual = filter (n: (head modules.${n}.imports).key != "cim/host") cim.providerNames;
      expected = [ ];
    }
    {
      name = "the modules are NixOS module functions";
      actual = [ (functionArgs (head modules.host.imports)) ] ++ map (n: functionArgs (elemAt modules.${n}.imports 1)) cim.providerNames;
      expected = [ moduleArgs ] ++ map (_: moduleArgs) cim.providerNames;
    }
  ];

  failed = filter (t: t.actual != t.expected) tests;
  describe = t: "FAIL ${t.name}\n  expected: ${toJSON t.expected}\n  actual:   ${toJSON t.actual}";
in
if failed == [ ] then
  {
    passed = length tests;
    summary = "flake.nix outputs: ${toString (length tests)} shape tests ok";
  }
else
  throw "nix/tests/shape.nix: ${toString (length failed)} of ${toString (length tests)} tests failed\n${concatStringsSep "\n" (map describe failed)}"
