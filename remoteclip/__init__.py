"""RemoteCLIP model library: loading, encoding, zero-shot, counting, training and evaluation."""
