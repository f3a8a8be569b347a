"""Remote management over OpAMP (opamp.proto, HTTP transport): the agent reports who it is, its
health and its running config (secrets redacted) to an OpAMP server, and can take a whole new
config from it.

Off unless `[opamp] endpoint` is set. Nothing of this package (nor protobuf's OpAMP messages) is
imported when it is off: the supervisor imports `edgecollect.opamp.client` only for a config with
an `[opamp]` table. Files it writes, all under `<state_dir>/opamp/`:

    instance_uid       16 raw bytes (a UUIDv7), made once: the agent's identity at the server
    remote.toml        the last remote config that validated *and* started (fsync + rename)
    remote.toml.new    a remote config being applied; removed on rollback, renamed on success
"""
