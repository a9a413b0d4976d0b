"""One ingest run: plan the scenes, read them into chips (`read`), encode, write whole scenes to the chip index;
executed in this process (`local`) or on a Ray cluster (`ray_executor`)."""
