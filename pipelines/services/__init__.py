"""Use cases shared by the CLI and the app: search, results and exports, counting, classifying an upload, scene
overviews, the demo library and the app's settings."""
