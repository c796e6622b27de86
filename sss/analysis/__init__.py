"""Analyses over run directories: a table of runs, figures, a report. No model, no GPU:
nothing here imports torch, transformers or lm_eval, so it runs anywhere the outputs are."""
