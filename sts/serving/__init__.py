"""serve: a model behind HTTP (LitServe)."""
