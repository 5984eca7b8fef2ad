"""Train an STS model: python train.py [model=cross_encoder] [loss=cosent] [experiment=NAME] ...

The same as `sts train ...` (sts/commands/train.py), kept at the root for a checkout."""
from sts.commands.train import main

if __name__ == "__main__":
    main()
