"""The `remoteclip-explorer` command line: one thin click module per command, options shared in `options`."""
