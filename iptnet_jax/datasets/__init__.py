"""The data layer: readers (eccv16 h5, split files, Charades-STA, YouTube Highlights, clip features), text, labels
and the input pipeline; the offline builders and generators are in `builders/`."""
