"""Jobs with a command line: ingest, search, train, evaluate, benchmark."""
