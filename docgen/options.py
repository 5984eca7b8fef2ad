"""Every option of every command, its default and its meaning, read from the Hydra configs that
ship in the package (sts/conf): the default is the composed config's value, the meaning is the
comment written above the key in the YAML file that sets it. So a new option is documented by
writing its comment, and `undocumented()` (run by tests/docs) names any option without one."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from docgen import renderer
from sts.config import CONFIG_DIR, compose
from sts.config import options as rules

# command -> (its Hydra config, the table of checked options in sts/config/options.py)
COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "train": ("train", rules.TRAIN),
    "predict": ("predict", rules.PREDICT),
    "evaluate": ("evaluate", rules.EVALUATE),
    "embed": ("embed", rules.EMBED),
    "mine": ("mine", rules.MINE),
    "serve": ("serve", rules.SERVE),
    "export": ("export", rules.EXPORT),
    "augment": ("augment", rules.AUGMENT),
    "calibrate": ("calibrate", rules.CALIBRATE),
}
# keys whose value is a structure of its own (a recipe's stages), documented as one option
OPAQUE = frozenset({"stages"})
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w\-@/.]*)\s*:")


@dataclass(frozen=True)
class Option:
    key: str
    default: Any
    meaning: str  # "" when nothing documents it
    source: str  # the YAML file the meaning comes from (or the class the value is passed to)
    when: str = ""  # the group choice that brings the option, e.g. model=cross_encoder ("" = always there)


def header(path: Path) -> str:
    """A config file's description: its first comment block (Hydra's `# @package` line left out)."""
    lines: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return " ".join(lines)


@cache
def comments(path: Path) -> dict[str, str]:
    """{dotted key within the file: the comment block directly above it}. A key without its own
    comment takes the block of the key just before it (no blank line between) when that block
    names it, e.g. one comment above `max_batch_size:` and `batch_timeout:` that says both."""
    found: dict[str, str] = {}
    pending: list[str] = []
    stack: list[tuple[int, str]] = []
    previous: tuple[str, str] | None = None  # (parent path, comment) of the key on the line before
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            pending, previous = [], None
            continue
        if stripped.startswith("#"):
            if not stripped.startswith("# @package"):
                pending.append(stripped[1:].strip())
            continue
        m = _KEY.match(line)
        if not m or stripped.startswith("- "):
            pending, previous = [], None
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = ".".join(k for _, k in stack)
        key = f"{parent}.{m['key']}" if parent else m["key"]
        text = " ".join(pending)
        if not text and previous and previous[0] == parent and re.search(rf"\b{re.escape(m['key'])}\b", previous[1]):
            text = previous[1]
        if text:
            found[key] = text
        previous = (parent, text) if text else None
        pending = []
        stack.append((indent, m["key"]))
    return found


@cache
def _sources(config: str, overrides: tuple[str, ...] = ()) -> list[tuple[Path, str]]:
    """The package's YAML files a command composes by default, in Hydra's order, with the package
    each is placed at ('' = the root)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    files = []
    for d in loader.compute_defaults_list(config, list(overrides), RunMode.RUN).defaults:
        path = CONFIG_DIR / f"{d.config_path}.yaml"
        if not d.config_path.startswith("hydra/") and path.is_file():
            files.append((path, d.package or ""))
    return files


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any, str | None]]:
    """(dotted key, default, the `_target_` of the nearest node that builds an object) per leaf."""
    out = []
    target = node.get("_target_") if isinstance(node, dict) else None
    for key, value in node.items():
        path = f"{prefix}{key}"
        if key == "_target_":
            continue
        if isinstance(value, dict) and value and path not in OPAQUE:
            out += [(k, v, t or target) for k, v, t in _leaves(value, path + ".")]
        else:
            out.append((path, value, target))
    return out


def _meaning(key: str, files: list[tuple[Path, str]], target: str | None) -> tuple[str, str]:
    for path, package in reversed(files):  # the last file to set a key has the say
        local = key[len(package) + 1:] if package and key.startswith(package + ".") else (key if not package else None)
        if local is None:
            continue
        text = comments(path).get(local)
        if not text and "." in local:  # a comment above the parent node that names this key
            parent = comments(path).get(local.rsplit(".", 1)[0], "")
            if re.search(rf"\b{re.escape(local.rsplit('.', 1)[1])}\b", parent):
                text = parent
        if text:
            return text, str(path.relative_to(CONFIG_DIR.parent.parent))
    if target and not target.startswith("sts."):
        name = key.rsplit(".", 1)[1]
        return f"passed to `{target}` as `{name}` (see its documentation)", target
    return "", ""


def _options(config: str, overrides: tuple[str, ...] = ()) -> list[Option]:
    cfg = OmegaConf.to_container(compose(config, list(overrides)), resolve=False)
    files = _sources(config, overrides)
    out = []
    for key, default, target in _leaves(cfg):
        meaning, source = _meaning(key, files, target)
        out.append(Option(key, default, meaning, source, " ".join(overrides)))
    return out


@cache
def reference(command: str) -> tuple[Option, ...]:
    """Every option of a command: each leaf of its composed default config but Hydra's own, then
    the options that another choice of a config group brings (e.g. model=cross_encoder's both_orders)."""
    config, _ = COMMANDS[command]
    out = _options(config)
    seen = {o.key for o in out}
    for group, chosen in groups(config).items():
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            if path.stem == chosen:
                continue
            for option in _options(config, (f"{group}={path.stem}",)):
                if option.key not in seen and option.key not in groups(config):  # a group set to nothing
                    seen.add(option.key)
                    out.append(option)
    return tuple(out)


def undocumented() -> list[str]:
    """`command: key` for every option with no meaning, and every key of a command's table of
    checked options (sts/config/options.py) missing from its reference."""
    missing = []
    for command, (_, table) in COMMANDS.items():
        options = reference(command)
        missing += [f"{command}: {o.key} (no comment above it in its YAML file)" for o in options if not o.meaning]
        keys = {o.key for o in options}
        missing += [f"{command}: {k} (checked in sts/config/options.py, absent from the composed config)" for k in table if k not in keys]
    return missing


def groups(config: str) -> dict[str, str]:
    """Config groups a command selects by default ({group: chosen option})."""
    return {str(path.parent.relative_to(CONFIG_DIR)): path.stem for path, _ in _sources(config) if path.parent != CONFIG_DIR}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, (dict, list)):
        shown = OmegaConf.to_yaml(OmegaConf.create({"v": value})).strip()[3:].strip() if isinstance(value, dict) else str(value)
        shown = " ".join(shown.split())
        return f"`{_cell(shown)}`" if len(shown) < 60 else f"`{_cell(shown[:57])}...`"
    if value == "":
        return '`""`'
    return f"`{_cell(str(value).lower() if isinstance(value, bool) else str(value))}`"


@renderer("options")
def options_table(command: str) -> str:
    """The table of a command's options: key, default, meaning."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    first: dict[str, str] = {}  # meaning -> the first option it describes (a comment shared by several)
    for o in reference(command):
        when = f" (with `{o.when}`)" if o.when else ""
        meaning = f"see `{first[o.meaning]}`" if o.meaning in first else _cell(o.meaning)
        first.setdefault(o.meaning, o.key)
        rows.append(f"| `{o.key}` | {_default(o.default)}{when} | {meaning} |")
    return "\n".join(rows)


@renderer("groups")
def groups_table(command: str) -> str:
    """The config groups a command composes: what each option file is for (its header comment)."""
    config, _ = COMMANDS[command]
    rows = ["| group | default | options (`group=option`) |", "| --- | --- | --- |"]
    for group, chosen in groups(config).items():
        choices = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        described = "<br>".join(f"`{c}`: {_cell(header(CONFIG_DIR / group / f'{c}.yaml'))}" for c in choices)
        rows.append(f"| `{group}` | `{chosen}` | {described} |")
    return "\n".join(rows)


@renderer("recipes")
def recipes_table(group: str = "experiment") -> str:
    """Every option of a config group (the recipes: experiment) and its header comment."""
    rows = ["| name | what it trains |", "| --- | --- |"]
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        rows.append(f"| `{path.stem}` | {_cell(header(path))} |")
    return "\n".join(rows)


@renderer("commands")
def commands_table() -> str:
    """Every command of the `sts` script (sts/commands/main.py) and what it does."""
    from sts.commands.main import COMMANDS as described

    rows = ["| command | what it does | page |", "| --- | --- | --- |"]
    rows += [f"| `sts {name}` | {what} | [{name}]({name}.md) |" for name, what in described.items()]
    return "\n".join(rows)
