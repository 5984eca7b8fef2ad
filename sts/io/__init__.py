"""Model files in and out: self-contained model files (model.pt, Lightning .ckpt), Hugging Face /
sentence-transformers folders and hub ids, the bundled encoder, and the exporters. Everything
read here is checked field by field before anything is built from it."""
