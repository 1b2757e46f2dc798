# Pure helpers of the CIM's Nix code: builtins only, no nixpkgs. flake.nix, the packages, the
# devShell and the NixOS modules take their facts from here, and scripts/nix-check evaluates
# and tests all of it offline (nix/tests.nix). Keep nixpkgs out of this file.
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    fromJSON
    fromTOML
    isPath
    isString
    listToAttrs
    map
    match
    readDir
    readFile
    replaceStrings
    storeDir
    stringLength
    substring
    ;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
in
rec {
  # rust-toolchain.toml's [toolchain] table: the single source of the Rust pin (ADR 0001).
  toolchain = (fromTOML (readFile ../rust-toolchain.toml)).toolchain;

  # Systems the flake builds for (Linux only: the modules are NixOS modules).
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  forSystems =
    f:
    listToAttrs (
      map (system: {
        name = system;
        value = f system;
      }) systems
    );

  # The sub-directories of `dir`, sorted (e.g. ../providers: what the workspace builds).
  subdirs =
    dir:
    let
      entries = readDir dir;
    in
    filter (name: entries.${name} == "directory") (attrNames entries);

  # Capability providers that get a NixOS module (nixosModules.<name>). `credentials` are the
  # files the provider reads through systemd credentials of the host unit.
  providers = {
    eventstore-jetstream = {
      description = "the event store (cim:ecs/eventstore) on NATS JetStream";
      credentials = [ ];
      needsNix = false;
    };
    objectstore-nats = {
      description = "the content-addressed object store (cim:ecs/objectstore) on NATS";
      credentials = [ ];
      needsNix = false;
    };
    graph-neo4j = {
      description = "the knowledge graph (cim:ecs/graph) on Neo4j over Bolt";
      credentials = [ "neo4j-password" ];
      needsNix = false;
    };
    build-nix = {
      description = "Nix builds (cim:ecs/build) through this machine's nix daemon";
      credentials = [ ];
      needsNix = true;
    };
    inference-ollama = {
      description = "inference (cim:ecs/inference) on an Ollama server";
      credentials = [ ];
      needsNix = false;
    };
  };
  providerNames = attrNames providers;

  # The host label a provider module sets; wadm spread requirements select on it.
  providerLabel = name: "cim.provider.${name}";

  # The host's systemd unit and where systemd exposes its credentials (LoadCredential=).
  # Providers are children of the host, so they read the same directory.
  hostUnit = "cim-host";
  credentialsDir = "/run/credentials/${hostUnit}.service";
  credentialPath = id: "${credentialsDir}/${id}";
  natsCredsId = "nats.creds";

  # Where the modules install provider archives and other artifacts (environment.etc), and
  # the file:// reference a wadm manifest uses for one of them.
  artifactsDir = "/etc/cim/artifacts";
  artifactRef = file: "file://${artifactsDir}/${file}";

  # Secrets must stay out of the Nix store: it is world-readable and gets copied to caches.
  # A path literal (./creds) counts, because interpolating it copies the file into the store.
  isStorePath = p: isPath p || hasPrefix "${storeDir}/" p || p == storeDir;

  # Why `p` cannot be a secret's location (null when it can; null `p` means "not set").
  secretPathProblem =
    what: p:
    if p == null then
      null
    else if isPath p then
      "${what} is a Nix path literal, which would be copied into the world-readable Nix store; give it as a string such as \"/run/keys/cim.creds\"."
    else if !(isString p) then
      "${what} must be a string (an absolute path outside the Nix store)."
    else if isStorePath p then
      "${what} (${p}) is in the Nix store, which is world-readable; keep secrets outside it (/run/keys, /run/agenix, /run/secrets)."
    else if !(hasPrefix "/" p) then
      "${what} (${p}) must be an absolute path."
    else
      null;

  # Returns `p`, or fails evaluation if it is in the Nix store (or not an absolute path).
  assertNotStorePath =
    what: p:
    let
      problem = secretPathProblem what p;
    in
    if problem == null then p else throw problem;

  # "nats://host[:port]" -> { host; port; }, or null. cim-host speaks plain nats:// only and
  # takes credentials from a .creds file, never from the URL.
  parseNatsUrl =
    url:
    let
      m = if isString url then match "nats://([A-Za-z0-9.-]+|[[][0-9A-Fa-f:.]+[]])(:([1-9][0-9]{0,4}))?/?" url else null;
      port = if m == null || builtins.elemAt m 2 == null then 4222 else fromJSON (builtins.elemAt m 2);
    in
    if m == null || port > 65535 then
      null
    else
      {
        host = builtins.head m;
        inherit port;
      };

  validLattice = s: isString s && match "[A-Za-z0-9_-]+" s != null;
  validLabelKey = k: match "[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?" k != null;
  validLabelValue = v: isString v && match "[^\n\r]*" v != null;
  validCredentialId = id: match "[A-Za-z0-9_-][A-Za-z0-9_.-]*" id != null;
  validArtifactName = n: match "[A-Za-z0-9_-][A-Za-z0-9_.-]*" n != null;

  # cim-host's command line for a host configuration `cfg` (the module's options:
  # natsUrl, lattice, credentialsFile, jsDomain, allowFileLoad, rpcTimeoutMs,
  # heartbeatIntervalSecs, maxExecutionTimeSecs, labels, extraArgs).
  hostArgs =
    cfg:
    let
      nats = parseNatsUrl cfg.natsUrl;
    in
    if nats == null then
      throw "services.cim-host.natsUrl (${toString cfg.natsUrl}) must look like nats://host:port"
    else
      [
        "--nats-host"
        nats.host
        "--nats-port"
        (toString nats.port)
        "--lattice"
        cfg.lattice
      ]
      ++ optionals (cfg.credentialsFile != null) [
        "--nats-creds"
        (credentialPath natsCredsId)
      ]
      ++ optionals (cfg.jsDomain != null) [
        "--js-domain"
        cfg.jsDomain
      ]
      ++ optional cfg.allowFileLoad "--allow-file-load"
      ++ [
        "--rpc-timeout-ms"
        (toString cfg.rpcTimeoutMs)
        "--heartbeat-interval-secs"
        (toString cfg.heartbeatIntervalSecs)
        "--max-execution-time-secs"
        (toString cfg.maxExecutionTimeSecs)
      ]
      ++ concatMap (key: [
        "--label"
        "${key}=${cfg.labels.${key}}"
      ]) (attrNames cfg.labels)
      ++ cfg.extraArgs;

  # One ExecStart= word: double-quoted, with systemd's specifier (%) and variable ($) escapes,
  # so a value is passed verbatim.
  systemdQuote =
    arg:
    "\""
    + replaceStrings [ "\\" "\"" "%" "$" "\n" ] [ "\\\\" "\\\"" "%%" "$$" "\\n" ] arg
    + "\"";
  execStart = exe: args: concatStringsSep " " (map systemdQuote ([ exe ] ++ args));

  # LoadCredential= entries: the NATS .creds file and any extra credentials (id -> file).
  loadCredentials =
    cfg:
    optional (cfg.credentialsFile != null) "${natsCredsId}:${cfg.credentialsFile}"
    ++ map (id: "${id}:${cfg.credentials.${id}}") (attrNames cfg.credentials);

  # Everything wrong with a host configuration, as messages (empty when it is fine). The
  # module turns them into NixOS assertions; nix/tests.nix checks them directly.
  hostProblems =
    cfg:
    filter (m: m != null) (
      [
        (secretPathProblem "services.cim-host.credentialsFile" cfg.credentialsFile)
        (secretPathProblem "services.cim-host.environmentFile" cfg.environmentFile)
        (
          if parseNatsUrl cfg.natsUrl == null then
            "services.cim-host.natsUrl (${toString cfg.natsUrl}) must look like nats://host[:port] (plain NATS; credentials go in credentialsFile)."
          else
            null
        )
        (
          if validLattice cfg.lattice then
            null
          else
            "services.cim-host.lattice (${toString cfg.lattice}) may only contain letters, digits, '_' and '-' (it is part of NATS subjects)."
        )
      ]
      ++ map (
        id:
        if !(validCredentialId id) then
          "services.cim-host.credentials: invalid credential id ${id}"
        else if id == natsCredsId then
          "services.cim-host.credentials: ${natsCredsId} is reserved for credentialsFile"
        else
          secretPathProblem "services.cim-host.credentials.${id}" cfg.credentials.${id}
      ) (attrNames cfg.credentials)
      ++ map (
        key:
        if !(validLabelKey key) then
          "services.cim-host.labels: invalid label key ${key} (letters, digits, '.', '_', '/', '-')"
        else if !(validLabelValue cfg.labels.${key}) then
          "services.cim-host.labels.${key}: the value must be a single line"
        else
          null
      ) (attrNames cfg.labels)
      ++ map (
        name: if validArtifactName name then null else "services.cim-host.artifacts: invalid file name ${name}"
      ) (attrNames cfg.artifacts)
    );

  # What is wrong with a provider module's settings `pcfg` (enable, credentialFiles) for
  # provider `name`: every credential the provider reads must be given.
  providerProblems =
    name: pcfg:
    optionals pcfg.enable (
      map (id: "services.cim-host.providers.${name}.credentialFiles.${id} must be set: the provider reads ${credentialPath id}") (
        filter (id: !(pcfg.credentialFiles ? ${id})) providers.${name}.credentials
      )
    );

  # The [Service] section of the host unit (systemd.services.cim-host.serviceConfig).
  # `exe` is the cim-host binary.
  hostServiceConfig =
    { cfg, exe }:
    {
      Type = "simple";
      ExecStart = execStart exe (hostArgs cfg);
      Restart = "on-failure";
      RestartSec = 5;
      # The host stops its providers (child processes) itself on SIGTERM.
      KillMode = "mixed";
      TimeoutStopSec = 30;
      EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;
      LoadCredential = loadCredentials cfg;

      DynamicUser = true;
      StateDirectory = hostUnit;
      CacheDirectory = hostUnit;
      WorkingDirectory = "/var/lib/${hostUnit}";
      UMask = "0077";

      # Hardening. Providers are started from archives extracted under /tmp (PrivateTmp).
      NoNewPrivileges = true;
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      PrivateDevices = true;
      ProtectKernelTunables = true;
      ProtectKernelModules = true;
      ProtectKernelLogs = true;
      ProtectControlGroups = true;
      ProtectClock = true;
      ProtectHostname = true;
      ProtectProc = "invisible";
      RestrictAddressFamilies = [
        "AF_INET"
        "AF_INET6"
        "AF_UNIX"
      ];
      RestrictNamespaces = true;
      RestrictRealtime = true;
      RestrictSUIDSGID = true;
      LockPersonality = true;
      # wasmtime compiles components with Cranelift at run time: it maps memory writable,
      # then executable, which MemoryDenyWriteExecute forbids.
      MemoryDenyWriteExecute = false;
      SystemCallArchitectures = "native";
      SystemCallFilter = [
        "@system-service"
        "~@privileged"
      ];
      SystemCallErrorNumber = "EPERM";
      CapabilityBoundingSet = "";
      AmbientCapabilities = "";
      LimitNOFILE = 65536;
    };
}
