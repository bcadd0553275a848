"""SM: the anchor-free DSNet summarization module (model, labels, losses)."""
