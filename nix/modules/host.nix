# NixOS module: a wasmCloud 1.9.x host (cim-host) as a hardened systemd service that joins a
# CIM lattice. Capability providers are not services of their own: the host starts them as
# child processes when wadm places them here (docs/adr/0006-nixos-hosts.md). The unit's
# settings are rendered by nix/lib.nix (tested offline); this file declares the options.
{ cimLib, packagesFor }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.cim-host;
  inherit (lib) mkOption types;
in
{
  options.services.cim-host = {
    enable = lib.mkEnableOption "a wasmCloud host (cim-host) joining a CIM lattice";

    package = mkOption {
      type = types.package;
      default = (packagesFor pkgs).cim-host;
      defaultText = lib.literalExpression "cim.packages.\${system}.cim-host";
      description = "The package providing `bin/cim-host`.";
    };

    natsUrl = mkOption {
      type = types.str;
      example = "nats://nats.cim.internal:4222";
      description = ''
        The lattice's NATS server (or a leaf node of it) as `nats://host[:port]`. cim-host
        speaks plain NATS; credentials come from {option}`credentialsFile`, never the URL.
      '';
    };

    lattice = mkOption {
      type = types.str;
      default = "cim";
      description = "The lattice name this host joins (the `--lattice` of `cim up`, wadm and `wash`).";
    };

    credentialsFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/keys/cim.creds";
      description = ''
        A NATS `.creds` file (user JWT and seed) readable by root, outside the Nix store (e.g.
        written by agenix or sops-nix, or copied to /run/keys). It reaches the service through
        `LoadCredential=`; the host hands the same identity to every provider it starts.
        Null only for a NATS server without authentication.
      '';
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/cim-host.env";
      description = ''
        An `EnvironmentFile=` outside the Nix store with further `WASMCLOUD_*` settings, for
        values that must not be in the store (e.g. `WASMCLOUD_LABEL_<key>=...`).
      '';
    };

    credentials = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        neo4j-password = "/run/keys/neo4j-password";
      };
      description = ''
        Further files handed to the service with `LoadCredential=`, by credential id. Providers
        read them at `/run/credentials/cim-host.service/<id>` (put that path in their wadm
        config, e.g. the graph provider's `password_file`). Paths must be outside the Nix store.
      '';
    };

    jsDomain = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "The JetStream domain of the lattice's key-value buckets, if it has one.";
    };

    allowFileLoad = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether components and provider archives may be loaded from `file://` references
        (needed for the archives the provider modules install under /etc/cim/artifacts).
      '';
    };

    rpcTimeoutMs = mkOption {
      type = types.ints.positive;
      default = 2000;
      description = "Timeout of RPC calls from this host, in milliseconds.";
    };

    heartbeatIntervalSecs = mkOption {
      type = types.ints.positive;
      default = 30;
      description = "Interval between host heartbeats, in seconds; wadm learns of hosts from them.";
    };

    maxExecutionTimeSecs = mkOption {
      type = types.ints.positive;
      default = 200;
      description = ''
        Longest a component invocation may run, in seconds, before the host abandons it and
        frees its instance slot (an invocation whose provider call lost its reply waits this
        long). Cover the longest caller deadline: reactor links' `call_timeout_secs`.
      '';
    };

    labels = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        zone = "b";
      };
      description = ''
        Host labels (`--label key=value`). wadm spread scalers place components and providers
        on hosts by label; each provider module adds `cim.provider.<name> = "true"`.
      '';
    };

    artifacts = mkOption {
      type = types.attrsOf types.path;
      default = { };
      example = lib.literalExpression ''{ "document.wasm" = "''${cim.packages.x86_64-linux.components}/share/cim/components/document.wasm"; }'';
      description = ''
        Files installed as /etc/cim/artifacts/<name>, so manifests can refer to them as
        `file:///etc/cim/artifacts/<name>`. The provider modules add their archives here.
        The host restarts when one of them changes.
      '';
    };

    path = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = ''
        Packages on the service's PATH. The host clears the environment of the providers it
        starts (only RUST_LOG and OTEL_* pass), so providers are given absolute paths in their
        configuration instead.
      '';
    };

    logLevel = mkOption {
      type = types.str;
      default = "info,cranelift_codegen=warn,wasmtime=warn";
      description = "`RUST_LOG` of the host; the host passes it on to its providers.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Further cim-host arguments, passed verbatim.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = map (message: {
      assertion = false;
      inherit message;
    }) (cimLib.hostProblems cfg);

    environment.etc = lib.mapAttrs' (
      name: file: lib.nameValuePair "cim/artifacts/${name}" { source = file; }
    ) cfg.artifacts;

    systemd.services.${cimLib.hostUnit} = {
      description = "wasmCloud host of the CIM lattice ${cfg.lattice}";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ] ++ lib.optional config.services.nats.enable "nats.service";
      inherit (cfg) path;
      environment.RUST_LOG = cfg.logLevel;
      restartTriggers = lib.attrValues cfg.artifacts;
      serviceConfig = cimLib.hostServiceConfig {
        inherit cfg;
        exe = lib.getExe' cfg.package "cim-host";
      };
    };
  };
}
