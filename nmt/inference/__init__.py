"""Using a trained model: load a checkpoint into a translator or a generator, the
REPL session, corpus metrics."""
