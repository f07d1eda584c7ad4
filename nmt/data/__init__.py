"""Text in, tensors out: tokenizers, parallel corpora and their batches, the char
stream of the language model."""
