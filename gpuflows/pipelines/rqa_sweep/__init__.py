"""rqa_sweep."""
