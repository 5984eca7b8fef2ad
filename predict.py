"""Label sentence pairs: python predict.py ckpt=MODEL input=pairs.csv [output=...] [threshold=...]

The same as `sts predict ...` (sts/commands/predict.py), kept at the root for a checkout."""
from sts.commands.predict import main

if __name__ == "__main__":
    main()
