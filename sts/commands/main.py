"""`sts <command> [key=value ...]`: the console script. Each command is a Hydra app whose config
ships in the package (sts/conf), so an installed wheel works from any folder."""
from __future__ import annotations

import importlib
import importlib.util
import sys

# command -> what it does (the module sts.commands.<command> runs it)
COMMANDS = {
    "train": "fit a model or run a recipe (stages, soups), write model.pt",
    "predict": "label a table of sentence pairs with score and lbl",
    "evaluate": "measure a model on a data set's split: metrics, plots",
    "embed": "sentence embeddings of a corpus (.npy), optional k-means",
    "mine": "the most similar pairs within a corpus",
    "serve": "a model behind HTTP: /v1/score, /v1/embeddings, /health, /info",
    "export": "a model file as a Hugging Face, sentence-transformers or ONNX folder",
    "augment": "silver pairs labelled by a teacher model",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {what}" for name, what in COMMANDS.items()]
    return "\n".join([
        "usage: sts <command> [key=value ...]   (Hydra overrides; `sts <command> --help` lists every option and its default)",
        "",
        "commands:",
        *lines,
    ])


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    if args[0] in ("-V", "--version"):
        from sts import __version__

        print(f"sts {__version__}")
        return
    name = args[0]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(COMMANDS)} (sts --help)", file=sys.stderr)
        sys.exit(2)
    module = f"sts.commands.{name}"
    sys.argv = [sys.argv[0], *args[1:]]  # what Hydra parses: the overrides
    import __main__

    # processes that Lightning's DDP launcher starts for the other ranks rerun `python -m <__main__'s module>`
    # with the same overrides: that is this command's module, not the `sts` script without its command
    __main__.__spec__ = importlib.util.find_spec(module)
    importlib.import_module(module).main()


if __name__ == "__main__":
    main()
