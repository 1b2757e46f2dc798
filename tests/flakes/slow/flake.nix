# A package whose build never finishes (a shell busy loop): for build timeouts.
{
  description = "slow-cim: a build that never ends";

  outputs = { self }: {
    packages.x86_64-linux.default = derivation {
      name = "slow-cim";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo 'thinking'; while :; do :; done" ];
    };
  };
}
