"""Jobs over the model library and the chip index: the CLI, the services the app shares, ingest, training,
evaluation and benchmarks (one subpackage each)."""
