"""Similar pairs within one corpus: python mine.py input=FILE [ckpt=BI_MODEL] [top_k=10] [rerank=CROSS_MODEL] [output=FILE]

The same as `sts mine ...` (sts/commands/mine.py), kept at the root for a checkout."""
from sts.commands.mine import main

if __name__ == "__main__":
    main()
