"""Continual learning: one agent trained on a task sequence under a local-update rule (``modrl continual``): config,
the stage runner, model parts the rules see, the from-scratch reference and the checkpoint store."""
