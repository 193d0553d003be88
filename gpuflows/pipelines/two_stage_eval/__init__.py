"""two_stage_eval."""
