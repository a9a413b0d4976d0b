"""Training data and training, kept apart from the model library (as open_clip keeps `open_clip_train`): B2C / M2B
captions, the trainset builder and its sources, near-duplicate filtering, and the `open_clip_train` wrapper."""
