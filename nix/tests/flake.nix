# Offline checks of the CIM's Nix code as an input-free flake: it evaluates and builds with
# no nixpkgs and no network (each check is a plain derivation run by /bin/sh). scripts/nix-check
# builds it from a scratch git copy of the tree, e.g.
#   nix build 'git+file:///tmp/copy?dir=nix/tests#checks.x86_64-linux.lib-tests'
#   lib-tests          nix/tests.nix: the pure library (nix/lib.nix)
#   flake-shape        nix/tests/shape.nix: the main flake's outputs with stand-in inputs
#   host-unit-example  the [Service] settings of an example host, as JSON (for reading)
{
  description = "Offline checks of the CIM's Nix code (no nixpkgs)";

  outputs =
    { self }:
    let
      cim = import ../lib.nix;
      libTests = import ../tests.nix;
      shape = import ./shape.nix;
      example = cim.hostServiceConfig {
        exe = "/run/current-system/sw/bin/cim-host";
        cfg = {
          natsUrl = "nats://nats.cim.internal:4222";
          lattice = "cim";
          credentialsFile = "/run/keys/cim.creds";
          environmentFile = null;
          jsDomain = null;
          allowFileLoad = true;
          rpcTimeoutMs = 2000;
          heartbeatIntervalSecs = 30;
          maxExecutionTimeSecs = 200;
          labels.${cim.providerLabel "graph-neo4j"} = "true";
          credentials.neo4j-password = "/run/keys/neo4j-password";
          artifacts = { };
          extraArgs = [ ];
        };
      };
      write =
        system: name: text:
        derivation {
          inherit name system text;
          builder = "/bin/sh";
          args = [
            "-c"
            "printf '%s\\n' \"$text\" > \"$out\""
          ];
        };
    in
    {
      checks = cim.forSystems (system: {
        lib-tests = write system "cim-nix-lib-tests" libTests.summary;
        flake-shape = write system "cim-flake-shape" shape.summary;
        host-unit-example = write system "cim-host-service.json" (builtins.toJSON example);
      });
    };
}
