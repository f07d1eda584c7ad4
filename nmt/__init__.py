"""nmt: recurrent neural machine translation and text generation."""
