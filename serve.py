"""Serve a model over HTTP: python serve.py [ckpt=MODEL] [host=127.0.0.1] [port=8000] [workers=1]

The same as `sts serve ...` (sts/commands/serve.py), kept at the root for a checkout."""
from sts.commands.serve import main

if __name__ == "__main__":
    main()
