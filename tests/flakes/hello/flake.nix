# The package of the pipeline tests and the demo: a flake with no inputs that builds offline
# (the builder is the sandbox's /bin/sh and uses shell built-ins only).
{
  description = "hello-cim: a tiny package built by the CIM pipeline";

  outputs = { self }: {
    packages.x86_64-linux.default = derivation {
      name = "hello-cim";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo 'building hello-cim'; echo 'hello from the CIM' > $out" ];
    };
  };
}
