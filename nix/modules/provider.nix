# NixOS module for one capability provider (called once per entry of cimLib.providers): it
# enables the host (./host.nix), labels it `cim.provider.<name>=true` so wadm spread scalers
# can place the provider here, installs the provider archive as
# /etc/cim/artifacts/<name>.par.gz for `file://` references, and hands the provider its
# credentials through the host unit. The host starts the provider when wadm asks for it.
{ cimLib, packagesFor, name }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  meta = cimLib.providers.${name};
  cfg = config.services.cim-host.providers.${name};
  packages = packagesFor pkgs;
  archiveName = "${name}.par.gz";
in
{
  options.services.cim-host.providers.${name} = {
    enable = lib.mkEnableOption "the ${name} provider on this host: ${meta.description}";

    archive = lib.mkOption {
      type = lib.types.path;
      default =
        if packages ? "${name}-archive" then
          "${packages."${name}-archive"}/share/cim/providers/${archiveName}"
        else
          throw "this revision of the CIM does not build the ${name} provider; set services.cim-host.providers.${name}.archive";
      defaultText = lib.literalExpression ''"''${cim.packages.''${system}.${name}-archive}/share/cim/providers/${archiveName}"'';
      description = ''
        The provider archive installed as ${cimLib.artifactsDir}/${archiveName}; a manifest
        refers to it as `${cimLib.artifactRef archiveName}`.
      '';
    };

    credentialFiles = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = lib.optionalAttrs (meta.credentials != [ ]) {
        ${builtins.head meta.credentials} = "/run/keys/${builtins.head meta.credentials}";
      };
      description = ''
        Secret files for this provider, by credential id, outside the Nix store. They are
        loaded into the host unit and readable by the provider at
        `${cimLib.credentialsDir}/<id>`.
        ${lib.optionalString (meta.credentials != [ ])
          "Required: ${lib.concatStringsSep ", " meta.credentials}."
        }
      '';
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = map (message: {
          assertion = false;
          inherit message;
        }) (cimLib.providerProblems name cfg);

        services.cim-host = {
          enable = true;
          labels.${cimLib.providerLabel name} = "true";
          artifacts.${archiveName} = cfg.archive;
          credentials = cfg.credentialFiles;
        };
      }
      (lib.mkIf meta.needsNix {
        # The provider runs `nix build` through this machine's nix daemon (a Unix socket,
        # reachable despite ProtectSystem=strict); the daemon does the sandboxed building.
        assertions = [
          {
            assertion = config.nix.enable;
            message = "services.cim-host.providers.${name} needs nix.enable (it builds through the nix daemon).";
          }
        ];
        services.cim-host.path = [ config.nix.package ];
      })
    ]
  );
}
