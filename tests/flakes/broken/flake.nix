# A package whose build fails: its builder prints a log line and exits 1.
{
  description = "broken-cim: a package whose build fails";

  outputs = { self }: {
    packages.x86_64-linux.default = derivation {
      name = "broken-cim";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo 'running the test suite'; echo 'test greeting ... FAILED' >&2; exit 1" ];
    };
  };
}
