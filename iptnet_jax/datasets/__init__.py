"""Dataset readers, writers and generators (eccv16 h5, split files, Charades-STA, TVSum-I3D)."""
