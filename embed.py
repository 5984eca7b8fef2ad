"""Embed (and cluster) sentences: python embed.py [ckpt=MODEL] input=FILE out=FILE.npy [cluster.k=5]

The same as `sts embed ...` (sts/commands/embed.py), kept at the root for a checkout."""
from sts.commands.embed import main

if __name__ == "__main__":
    main()
