"""The write side over HTTP: auth and task commands. Appends events to the store, nothing else."""
