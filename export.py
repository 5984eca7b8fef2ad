"""Write a model for other tools: python export.py ckpt=MODEL format=sentence-transformers|hf|onnx out=DIR

The same as `sts export ...` (sts/commands/export.py), kept at the root for a checkout."""
from sts.commands.export import main

if __name__ == "__main__":
    main()
