"""Measure a model on a data split: python evaluate.py ckpt=MODEL [data=stsb] [split=test|val]

The same as `sts evaluate ...` (sts/commands/evaluate.py), kept at the root for a checkout."""
from sts.commands.evaluate import main

if __name__ == "__main__":
    main()
