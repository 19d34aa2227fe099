"""Tokenizer, chat rendering with loss masks, and the Grain pipeline that packs verified conversations."""

# The arrays of one packed batch, each [batch, seq_len]: what the loader yields and the train step reads.
BATCH_KEYS = ("inputs", "targets", "loss_mask", "segment_ids", "positions")
