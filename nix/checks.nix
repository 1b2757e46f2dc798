# The flake's checks, for `nix flake check` where nixpkgs can be fetched (a NixOS host, CI
# with network). scripts/nix-check runs the parts that need no nixpkgs offline.
#   lib-tests   nix/tests.nix (the pure library's tests)
#   host-unit   a NixOS node with the graph-neo4j and build-nix modules evaluates, its
#               assertions reject a credentials file in the Nix store, and the rendered
#               cim-host.service is hardened and carries the expected flags and credentials
#               (building it builds the workspace and the provider archives)
#   cim, components   the packages build
{
  pkgs,
  nixpkgs,
  self,
  system,
}:
let
  inherit (pkgs) lib;

  node =
    extra:
    nixpkgs.lib.nixosSystem {
      inherit system;
      modules = [
        self.nixosModules.graph-neo4j
        self.nixosModules.build-nix
        {
          boot.isContainer = true;
          system.stateVersion = "25.05";
          services.cim-host = {
            natsUrl = "nats://nats.cim.internal:4222";
            credentialsFile = "/run/keys/cim.creds";
            labels.zone = "a";
            providers.graph-neo4j = {
              enable = true;
              credentialFiles.neo4j-password = "/run/keys/neo4j-password";
            };
            providers.build-nix.enable = true;
          };
        }
        extra
      ];
    };
  good = node { };
  failedAssertions =
    n: map (a: a.message) (builtins.filter (a: !a.assertion) n.config.assertions);
  storeSecret = node {
    services.cim-host.credentialsFile = lib.mkForce "${builtins.storeDir}/00000000000000000000000000000000-cim.creds";
  };
  cfg = good.config;
  evalFacts = {
    "no failed assertions" = failedAssertions good == [ ];
    "a store path credentials file is rejected" = lib.any (m: lib.hasInfix "Nix store" m) (
      failedAssertions storeSecret
    );
    "provider labels" =
      cfg.services.cim-host.labels."cim.provider.graph-neo4j" == "true"
      && cfg.services.cim-host.labels."cim.provider.build-nix" == "true";
    "archives under /etc/cim/artifacts" =
      cfg.environment.etc ? "cim/artifacts/graph-neo4j.par.gz"
      && cfg.environment.etc ? "cim/artifacts/build-nix.par.gz";
    "nix on the host's PATH for build-nix" = lib.elem cfg.nix.package cfg.systemd.services.cim-host.path;
  };
  wrongFacts = lib.attrNames (lib.filterAttrs (_: ok: !ok) evalFacts);
  unit = cfg.systemd.units."cim-host.service".unit;
in
{
  lib-tests = pkgs.runCommand "cim-nix-lib-tests" { } ''
    echo ${lib.escapeShellArg (import ./tests.nix).summary} > $out
  '';

  host-unit =
    assert lib.assertMsg (wrongFacts == [ ]) "NixOS module checks failed: ${lib.concatStringsSep ", " wrongFacts}";
    pkgs.runCommand "cim-host-unit-check" { } ''
      u=${unit}/cim-host.service
      for line in DynamicUser=true ProtectSystem=strict ProtectHome=true PrivateTmp=true \
          NoNewPrivileges=true CapabilityBoundingSet= \
          LoadCredential=nats.creds:/run/keys/cim.creds \
          LoadCredential=neo4j-password:/run/keys/neo4j-password; do
        grep -qxF "$line" "$u" || { echo "cim-host.service lacks $line"; cat "$u"; exit 1; }
      done
      for words in '"--nats-host" "nats.cim.internal" "--nats-port" "4222" "--lattice" "cim"' \
          '"--nats-creds" "/run/credentials/cim-host.service/nats.creds"' \
          '"--label" "cim.provider.graph-neo4j=true"' '"--label" "cim.provider.build-nix=true"'; do
        grep -qF -- "$words" "$u" || { echo "ExecStart lacks $words"; cat "$u"; exit 1; }
      done
      cp "$u" $out
    '';

  cim = self.packages.${system}.cim;
  components = self.packages.${system}.components;
}
