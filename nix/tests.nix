# Offline tests of nix/lib.nix (no nixpkgs): `nix-instantiate --eval --strict nix/tests.nix`
# evaluates to { passed; summary; } or fails evaluation listing every mismatch.
# scripts/nix-check runs it; the offline test flake (nix/tests/flake.nix) and the main
# flake's checks build it too.
let
  cim = import ./lib.nix;
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    deepSeq
    elem
    filter
    length
    map
    match
    toJSON
    tryEval
    ;

  fails = x: !(tryEval (deepSeq x x)).success;
  mentions = text: messages: builtins.any (m: match ".*${text}.*" m != null) messages;

  # A host configuration as the module hands it over (its option values).
  host = {
    natsUrl = "nats://nats.cim.internal:4222";
    lattice = "cim";
    credentialsFile = "/run/keys/cim.creds";
    environmentFile = null;
    jsDomain = null;
    allowFileLoad = true;
    rpcTimeoutMs = 2000;
    heartbeatIntervalSecs = 30;
    maxExecutionTimeSecs = 200;
    labels = {
      "cim.provider.graph-neo4j" = "true";
      zone = "b";
    };
    credentials = {
      neo4j-password = "/run/keys/neo4j-password";
    };
    artifacts = {
      "graph-neo4j.par.gz" = "/nix/store/00000000000000000000000000000000-graph-neo4j-archive/share/cim/providers/graph-neo4j.par.gz";
    };
    extraArgs = [ ];
  };
  bad = host // {
    natsUrl = "tls://nats.cim.internal:4222";
    lattice = "cim.prod";
    credentialsFile = "/nix/store/abc-creds";
    environmentFile = "relative/env";
    labels = {
      "bad key" = "x";
      ok = "two\nlines";
    };
    credentials = {
      "nats.creds" = "/run/keys/other";
      leaked = "/nix/store/xyz-password";
    };
  };
  service = cim.hostServiceConfig {
    cfg = host;
    exe = "/nix/store/cim/bin/cim-host";
  };
  providersBuilt = cim.subdirs ../providers;

  tests = [
    {
      name = "assertNotStorePath rejects a store path";
      actual = fails (cim.assertNotStorePath "creds" "/nix/store/abc-creds");
      expected = true;
    }
    {
      name = "assertNotStorePath rejects the store itself";
      actual = fails (cim.assertNotStorePath "creds" builtins.storeDir);
      expected = true;
    }
    {
      name = "assertNotStorePath rejects a path literal (it would be copied into the store)";
      actual = fails (cim.assertNotStorePath "creds" ./lib.nix);
      expected = true;
    }
    {
      name = "assertNotStorePath rejects a relative path";
      actual = fails (cim.assertNotStorePath "creds" "keys/cim.creds");
      expected = true;
    }
    {
      name = "assertNotStorePath accepts /run/keys";
      actual = cim.assertNotStorePath "creds" "/run/keys/cim.creds";
      expected = "/run/keys/cim.creds";
    }
    {
      name = "a store-like prefix that is not the store is fine";
      actual = cim.secretPathProblem "creds" "/nix/storefront/creds";
      expected = null;
    }
    {
      name = "parseNatsUrl: host and port";
      actual = cim.parseNatsUrl "nats://nats.cim.internal:4223";
      expected = {
        host = "nats.cim.internal";
        port = 4223;
      };
    }
    {
      name = "parseNatsUrl: default port, trailing slash";
      actual = cim.parseNatsUrl "nats://10.0.0.5/";
      expected = {
        host = "10.0.0.5";
        port = 4222;
      };
    }
    {
      name = "parseNatsUrl: IPv6 literal";
      actual = cim.parseNatsUrl "nats://[fd00::1]:4222";
      expected = {
        host = "[fd00::1]";
        port = 4222;
      };
    }
    {
      name = "parseNatsUrl rejects other schemes, userinfo, paths and bad ports";
      actual = map cim.parseNatsUrl [
        "tls://nats:4222"
        "nats://user:secret@nats:4222"
        "nats://nats:4222/x"
        "nats://nats:0"
        "nats://nats:70000"
        "nats.cim.internal:4222"
      ];
      expected = [
        null
        null
        null
        null
        null
        null
      ];
    }
    {
      name = "hostArgs renders cim-host's flags";
      actual = cim.hostArgs host;
      expected = [
        "--nats-host"
        "nats.cim.internal"
        "--nats-port"
        "4222"
        "--lattice"
        "cim"
        "--nats-creds"
        "/run/credentials/cim-host.service/nats.creds"
        "--allow-file-load"
        "--rpc-timeout-ms"
        "2000"
        "--heartbeat-interval-secs"
        "30"
        "--max-execution-time-secs"
        "200"
        "--label"
        "cim.provider.graph-neo4j=true"
        "--label"
        "zone=b"
      ];
    }
    {
      name = "hostArgs: no creds, a JetStream domain, no file loads, extra args";
      actual = cim.hostArgs (
        host
        // {
          credentialsFile = null;
          jsDomain = "hub";
          allowFileLoad = false;
          labels = { };
          extraArgs = [ "--experimental-features=builtin-http-server" ];
        }
      );
      expected = [
        "--nats-host"
        "nats.cim.internal"
        "--nats-port"
        "4222"
        "--lattice"
        "cim"
        "--js-domain"
        "hub"
        "--rpc-timeout-ms"
        "2000"
        "--heartbeat-interval-secs"
        "30"
        "--max-execution-time-secs"
        "200"
        "--experimental-features=builtin-http-server"
      ];
    }
    {
      name = "hostArgs refuses an invalid URL";
      actual = fails (cim.hostArgs (host // { natsUrl = "http://x"; }));
      expected = true;
    }
    {
      name = "execStart quotes every word and escapes %, $, quotes and backslashes";
      actual = cim.execStart "/bin/cim-host" [
        "--label"
        "note=50% \"$HOME\"\\"
      ];
      expected = ''"/bin/cim-host" "--label" "note=50%% \"$$HOME\"\\"'';
    }
    {
      name = "loadCredentials: NATS creds and extra credentials";
      actual = cim.loadCredentials host;
      expected = [
        "nats.creds:/run/keys/cim.creds"
        "neo4j-password:/run/keys/neo4j-password"
      ];
    }
    {
      name = "a good host configuration has no problems";
      actual = cim.hostProblems host;
      expected = [ ];
    }
    {
      name = "a bad host configuration has one problem per mistake";
      actual = length (cim.hostProblems bad);
      expected = 8;
    }
    {
      name = "problems name the store path, the URL, the lattice and the label";
      actual =
        let
          p = cim.hostProblems bad;
        in
        map (t: mentions t p) [
          "credentialsFile .*Nix store"
          "environmentFile .*absolute"
          "natsUrl"
          "lattice"
          "reserved"
          "credentials.leaked .*Nix store"
          "invalid label key bad key"
          "labels.ok"
        ];
      expected = [
        true
        true
        true
        true
        true
        true
        true
        true
      ];
    }
    {
      name = "graph-neo4j needs its password credential";
      actual = cim.providerProblems "graph-neo4j" {
        enable = true;
        credentialFiles = { };
      };
      expected = [
        "services.cim-host.providers.graph-neo4j.credentialFiles.neo4j-password must be set: the provider reads /run/credentials/cim-host.service/neo4j-password"
      ];
    }
    {
      name = "provider problems: none when disabled or complete";
      actual = [
        (cim.providerProblems "graph-neo4j" {
          enable = false;
          credentialFiles = { };
        })
        (cim.providerProblems "graph-neo4j" {
          enable = true;
          credentialFiles.neo4j-password = "/run/keys/neo4j-password";
        })
        (cim.providerProblems "build-nix" {
          enable = true;
          credentialFiles = { };
        })
      ];
      expected = [
        [ ]
        [ ]
        [ ]
      ];
    }
    {
      name = "the host unit is hardened";
      actual = {
        inherit (service)
          DynamicUser
          ProtectSystem
          ProtectHome
          PrivateTmp
          NoNewPrivileges
          CapabilityBoundingSet
          RestrictAddressFamilies
          SystemCallFilter
          LoadCredential
          EnvironmentFile
          StateDirectory
          ;
      };
      expected = {
        DynamicUser = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        LoadCredential = [
          "nats.creds:/run/keys/cim.creds"
          "neo4j-password:/run/keys/neo4j-password"
        ];
        EnvironmentFile = [ ];
        StateDirectory = "cim-host";
      };
    }
    {
      name = "ExecStart starts cim-host with the rendered flags";
      actual = service.ExecStart;
      expected = cim.execStart "/nix/store/cim/bin/cim-host" (cim.hostArgs host);
    }
    {
      name = "provider labels, credential paths and artifact references";
      actual = [
        (cim.providerLabel "build-nix")
        (cim.credentialPath "neo4j-password")
        (cim.artifactRef "graph-neo4j.par.gz")
      ];
      expected = [
        "cim.provider.build-nix"
        "/run/credentials/cim-host.service/neo4j-password"
        "file:///etc/cim/artifacts/graph-neo4j.par.gz"
      ];
    }
    {
      name = "every provider in providers/ has a NixOS module entry in nix/lib.nix";
      actual = filter (p: !(elem p cim.providerNames)) providersBuilt;
      expected = [ ];
    }
    {
      name = "the toolchain pin: a stable version with wasm32-wasip2";
      actual = [
        (match "[0-9]+\\.[0-9]+\\.[0-9]+" cim.toolchain.channel != null)
        (elem "wasm32-wasip2" cim.toolchain.targets)
      ];
      expected = [
        true
        true
      ];
    }
  ];

  failed = filter (t: t.actual != t.expected) tests;
  describe = t: "FAIL ${t.name}\n  expected: ${toJSON t.expected}\n  actual:   ${toJSON t.actual}";
in
if failed == [ ] then
  {
    passed = length tests;
    summary = "nix/lib.nix: ${toString (length tests)} tests ok";
  }
else
  throw "nix/tests.nix: ${toString (length failed)} of ${toString (length tests)} tests failed\n${concatStringsSep "\n" (map describe failed)}"
