"""The chip index: the LanceDB table of chip embeddings (`chip_index`), its schema, ANN policy, scene log and
storage locations."""
