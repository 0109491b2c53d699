"""Host services for devices: the emulated board and its server, RPC tracker/server processes, the runtime-only bundle."""
