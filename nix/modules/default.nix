# The flake's nixosModules: `host` (also `default`) and one module per provider in
# cimLib.providers. Each carries a `key`, so importing several provider modules (each imports
# the host module) declares the host's options once.
{ cimLib, packagesFor }:
let
  host = {
    key = "cim/host";
    _file = ./host.nix;
    imports = [ (import ./host.nix { inherit cimLib packagesFor; }) ];
  };
  provider = name: {
    key = "cim/provider/${name}";
    _file = ./provider.nix;
    imports = [
      host
      (import ./provider.nix { inherit cimLib packagesFor name; })
    ];
  };
in
{
  inherit host;
  default = host;
}
// builtins.listToAttrs (
  map (name: {
    inherit name;
    value = provider name;
  }) cimLib.providerNames
)
