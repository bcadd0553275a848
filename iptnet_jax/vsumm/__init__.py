"""Video-summarization evaluation protocol (host-side numpy): knapsack, keyshots, NMS, F-score."""
