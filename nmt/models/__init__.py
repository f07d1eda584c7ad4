"""The reference models, written as their papers write them: attention, encoder,
decoder (one step for teacher forcing and search), Seq2Seq and the char LM.
Decoding speed lives in `nmt.fast`, never here."""
