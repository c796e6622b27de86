"""lm-eval integration: registered model classes, task YAMLs, scoring, run records."""
