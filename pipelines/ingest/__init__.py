"""One ingest run, as clip-retrieval's runner: `plan` (which scenes, which are done) → `read` (scenes into chips, in
reader processes) → encode → write whole scenes to the chip index; executed in this process (`local`) or on a Ray
cluster (`ray_executor`)."""
