"""Label new training pairs with a trained model: python augment.py teacher=MODEL out=FILE [sampler=BI_MODEL]

The same as `sts augment ...` (sts/commands/augment.py), kept at the root for a checkout."""
from sts.commands.augment import main

if __name__ == "__main__":
    main()
