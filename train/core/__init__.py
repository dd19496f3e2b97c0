"""The shared backbone: config schema and checks, command line, train state, loop, checkpoints, devices, writers."""
