"""The docs' reference pages, generated from the code so they cannot drift from it.

- reference/params.md: every key of the params schema (carbon_pipe.config.params.Params), with its type, default, checks
  and help. Help is the field's `description` where the schema gives one, else the comment beside the key in
  params.yaml, else the comment beside the field in the schema's source.
- reference/cli.md: every `carbon-pipe` command and option, from the Typer app, with its help.
- reference/artifacts.md: every field of every file a stage hands to another (the artifacts' pydantic models), with
  its type, unit and meaning.

The pages are committed (so they read on GitHub too) and regenerated with `python docs/gen_reference.py`. A page
that differs from what the code generates fails the docs build (this file is an mkdocs hook, mkdocs.yml `hooks:`)
and the tests (tests/test_docs.py); `python docs/gen_reference.py --check` says which.
"""

from __future__ import annotations

import functools
import inspect
import io
import re
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent


# ---- params ----------------------------------------------------------------------------------------------------


def yaml_comments(text: str) -> dict[str, tuple[str, str]]:
    """{dotted key: (value as written, comment)} of a params.yaml, read line by line (PyYAML drops comments). A
    comment-only line aligned with the comment above it continues that comment."""
    found: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str]] = []
    last_key, last_column = None, -1
    for line in text.splitlines():
        match = re.match(r"^(\s*)([A-Za-z_]\w*):(.*)$", line)
        if not match:
            comment = line.lstrip()
            if last_key and comment.startswith("#") and len(line) - len(comment) == last_column:
                value, before = found[last_key]
                found[last_key] = (value, f"{before} {comment[1:].strip()}".strip())
            else:
                last_key = None
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        value, comment, column = _split_comment(rest)
        dotted = ".".join(name for _, name in stack)
        found[dotted] = (value, comment)
        last_key, last_column = dotted, (len(line) - len(rest) + column if column >= 0 else -1)
    return found


def _split_comment(rest: str) -> tuple[str, str, int]:
    """(value, comment, the comment's column in `rest` or -1), splitting at a '#' outside quotes."""
    quote = None
    for index, char in enumerate(rest):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or rest[index - 1].isspace()):
            return rest[:index].strip(), rest[index + 1 :].strip(), index
    return rest.strip(), "", -1


def source_comments(model: type) -> dict[str, str]:
    """{field: comment} from the schema's source: the comment on a field's line, or the comment lines above it."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not cls.__module__.startswith("pydantic") and hasattr(cls, "model_fields"):
            found.update(_class_comments(cls))
    return found


@functools.cache
def _class_comments(cls: type) -> dict[str, str]:
    """The comments beside the fields one class defines (its source is read once: inspect parses the module)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(token.start[0])
    found: dict[str, str] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        match = re.match(r"^    ([A-Za-z_]\w*)\s*:", line)
        if not match or match.group(1) not in cls.__dict__.get("__annotations__", {}):
            continue
        above, previous = [], number - 1
        while previous in comments and previous not in code_lines:
            above.insert(0, comments[previous])
            previous -= 1
        text = comments.get(number) or " ".join(above)
        if text:
            found[match.group(1)] = text
    return found


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_fields")


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """The type inside any Annotated layers, and their metadata (FieldInfo's own metadata included)."""
    metadata: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        for item in extra:
            metadata.extend(getattr(item, "metadata", None) or [] if type(item).__name__ == "FieldInfo" else [item])
    return tp, metadata


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_yaml(item)}" for key, item in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_type(tp: Any) -> tuple[str, list[Any]]:
    """(the type in words, the metadata that checks it) of an annotation."""
    tp, metadata = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return " | ".join(f"`{_yaml(arg)}`" for arg in args), metadata
    if origin in (typing.Union, types.UnionType):
        parts = []
        for arg in args:
            if arg is type(None):
                continue
            text, inner = render_type(arg)
            parts.append(text)
            metadata.extend(inner)
        optional = " or `null`" if type(None) in args else ""
        return " or ".join(parts) + optional, metadata
    if origin in (list, tuple):
        text, inner = render_type(args[0]) if args else ("any", [])
        metadata.extend(inner)
        return f"list of {text}", metadata
    if origin is dict:
        return "mapping", metadata
    if _is_model(tp):
        return "section", metadata
    if tp is typing.Any:
        return "any", metadata
    return getattr(tp, "__name__", str(tp)), metadata


def _function_name(item: Any) -> str:
    return getattr(getattr(item, "func", None), "__name__", "")


BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >=", "max_length": "length <="}


def describe_check(item: Any) -> str | None:
    """One check in words: a bound, a pattern, or a validator (its docstring's first sentence, or the factory that
    made it with its arguments, a function argument by what it returns)."""
    for attribute, symbol in BOUNDS.items():
        if type(item).__name__ in ("Ge", "Gt", "Le", "Lt", "MinLen", "MaxLen") and hasattr(item, attribute):
            return f"{symbol} {_number(getattr(item, attribute))}"
    if getattr(item, "pattern", None):
        return f"matches `{item.pattern}`"
    func = getattr(item, "func", None)
    if func is None:
        return None
    doc = inspect.getdoc(func)
    if doc:
        return doc.split("\n\n")[0].replace("\n", " ").rstrip(".")
    name = func.__qualname__.split(".<locals>")[0].lstrip("_").replace("_", " ")
    if func.__closure__:
        values = [cell.cell_contents for cell in func.__closure__]
        # a factory given a function of the allowed values (and a label): the values say it all
        listed = [_listed(value) for value in values if callable(value) and not isinstance(value, type)]
        shown = [text for text in listed if text] or [repr(value) for value in values]
        return f"{name}: {', '.join(shown)}"
    return name


def _number(value: Any) -> str:
    """A bound as written in the schema: 2**32 and 2**31 - 1 as powers of two."""
    if isinstance(value, int) and value > 1024 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    if isinstance(value, int) and value > 1024 and (value + 1) & value == 0:
        return f"2^{value.bit_length()} - 1"
    return _yaml(value)


def _listed(function: Any) -> str:
    """What a function of no arguments returns, as a list in words; '' for one that takes arguments."""
    try:
        made = function()
    except TypeError:  # a function of arguments: not a list of values
        return ""
    return ", ".join(map(str, made)) if isinstance(made, (list, tuple, dict)) else str(made)


def params_rows(model: type, prefix: str, written: dict[str, tuple[str, str]]) -> Iterator[tuple[str, ...]]:
    """(key, type, default, checks, in params.yaml, help) for every key of `model`, sections depth first."""
    notes = source_comments(model)
    nested = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        text, metadata = render_type(field.annotation)
        metadata = [*field.metadata, *metadata]
        is_duration = any(_function_name(item) == DURATION for item in metadata)
        # a duration's own check is the type's, said once above the tables
        shown = [describe_check(item) for item in metadata if _function_name(item) != DURATION]
        checks = "; ".join(filter(None, shown))
        required = field.is_required()
        default = "required" if required else f"`{_yaml(_dumped(field.default))}`"
        if text.startswith("float") and is_duration:
            text = "duration" + text.removeprefix("float")
            default = _duration(field.default) if isinstance(field.default, float) else default
        value, comment = written.get(key, ("", ""))
        help_text = field.description or _plain(comment or notes.get(name, ""))
        inner = _inner_model(field.annotation)
        if inner is not None and text == "section":
            nested.append((key, inner))
            default = "" if not required else default
        elif inner is not None:
            nested.append((f"{key}[]", inner))
        yield key, text, default, checks, f"`{value}`" if value else "", help_text
    for key, inner in nested:
        yield from params_rows(inner, f"{key}.", written)


DURATION = "checked_duration"  # the schema's duration validator: its fields read 90s, 30min, 4h


def _duration(seconds: float) -> str:
    from carbon_pipe.timeutil import format_duration

    return f"`{_yaml(seconds)}` ({format_duration(seconds)})"


def _duration_rule() -> str:
    from carbon_pipe.config.params import Params

    for model in _models(Params):
        for field in model.model_fields.values():
            for item in [*field.metadata, *_unwrap(field.annotation)[1]]:
                if _function_name(item) == DURATION:
                    return (describe_check(item) or "").split(": ", 1)[-1]
    return ""


def _models(model: type) -> Iterator[type]:
    yield model
    for field in model.model_fields.values():
        inner = _inner_model(field.annotation)
        if inner is not None:
            yield from _models(inner)


def _dumped(value: Any) -> Any:
    return value.model_dump(by_alias=True) if hasattr(value, "model_dump") else value


def _inner_model(annotation: Any) -> type | None:
    tp, _ = _unwrap(annotation)
    if _is_model(tp):
        return tp
    for arg in typing.get_args(tp):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _plain(text: str) -> str:
    """Help text as plain text in markdown: its <, > and * are characters, not HTML or emphasis (`code` is kept)."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):  # outside code spans
        parts[index] = parts[index].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts)


def params_page() -> str:
    from carbon_pipe.config.params import Params

    written = yaml_comments((ROOT / "params.yaml").read_text(encoding="utf-8"))
    lines = [
        "# params.yaml reference",
        "",
        "Generated from the schema (`carbon_pipe/config/params.py` and the sections it imports) and the comments in",
        "`params.yaml` at every docs build, by `docs/gen_reference.py`: it cannot drift from the code. What happens to",
        "a bad value is in [Params and bad input](../params.md). A duration reads `90s`, `30min`, `4h` or `1h30min`",
        f"(its default here in seconds), and each is checked: {_duration_rule()}.",
        "",
    ]
    sections: dict[str, list[tuple[str, ...]]] = {}
    for row in params_rows(Params, "", written):
        sections.setdefault(row[0].split(".")[0].removesuffix("[]"), []).append(row)
    for section, rows in sections.items():
        model = _inner_model(Params.model_fields[section].annotation)
        doc = (model.__dict__.get("__doc__") if model else None) or written.get(section, ("", ""))[1]
        lines += [f"## `{section}`", ""]
        if doc:
            lines += [inspect.cleandoc(doc).replace("\n", " "), ""]
        lines += ["| key | type | default | checks | in params.yaml | help |", "|---|---|---|---|---|---|"]
        # a section's own row would repeat its heading
        rows = [row for row in rows if row[0] != section or row[1] != "section"]
        lines += ["| " + " | ".join(_cell(cell) for cell in (f"`{row[0]}`", *row[1:])) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


# ---- CLI -------------------------------------------------------------------------------------------------------


def _commands(group: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "hidden", False):
            continue
        yield f"{prefix}{name}", command
        yield from _commands(command, f"{prefix}{name} ")


def cli_page() -> str:
    import typer.main

    from carbon_pipe.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# `carbon-pipe` command reference",
        "",
        "Generated from the Typer app (`carbon_pipe/cli/`) at every docs build, by `docs/gen_reference.py`: each",
        "command's and option's help is the one `carbon-pipe COMMAND --help` prints.",
        "",
        _plain(inspect.cleandoc(root.help or "")),
        "",
    ]
    for name, command in _commands(root, ""):
        lines += [f"## `carbon-pipe {name}`", "", _plain(inspect.cleandoc(command.help or "")), ""]
        params = [param for param in command.params if not getattr(param, "hidden", False)]
        if not params:
            continue
        lines += ["| option | default | help |", "|---|---|---|"]
        for param in params:
            names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
            if type(param).__name__.endswith("Argument"):
                names = f"`{param.name.upper()}`" + (" ..." if param.nargs == -1 else "")
            default = "required" if param.required else f"`{_yaml(param.default)}`"
            help_text = _plain(getattr(param, "help", "") or "")
            cells = (names, default, help_text)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


# ---- artifacts -------------------------------------------------------------------------------------------------

# (file, module, model, written by, read by)
ARTIFACTS = (
    ("stages/fetch-data/manifest.json", "carbon_pipe.datasets.manifest", "DataManifest", "fetch-data",
     "wait-for-window (`scheduler.expected_duration: auto` on own data)"),
    ("stages/wait-for-window/horizon.json", "carbon_pipe.intensity.horizon", "Horizon", "wait-for-window",
     "train (both runs), compare; its series is intensity.csv beside it"),
    ("stages/wait-for-window/decision.json", "carbon_pipe.scheduling.decision", "Decision", "wait-for-window",
     "train-optimized, `carbon-pipe run`, compare"),
    ("metrics/schedule.json", "carbon_pipe.scheduling.decision", "ScheduleMetrics", "wait-for-window",
     "`dvc metrics show`"),
    ("metrics/<run>.json", "carbon_pipe.training.run_summary", "RunSummary", "`train --run`, `carbon-pipe run`",
     "compare; wait-for-window (`scheduler.expected_duration: auto`)"),
    ("stages/train-optimized/profile.json", "carbon_pipe.profiling.record", "RunProfileRecord", "train-optimized",
     "compare (its figures rebuilt from the bursts); a run that was not profiled writes `{\"skipped\": why}`"),
    ("metrics/comparison.json", "carbon_pipe.report.summaries", "Comparison", "compare", "you, and report.md"),
    ("metrics/summary.json", "carbon_pipe.report.summaries", "KeyMetrics", "compare",
     "`dvc metrics diff`, `dvc exp show`, `carbon-pipe diff`, `carbon-pipe experiments`"),
)
UNITS = (  # a key's unit, from how its name ends
    ("_g_per_kwh", "g/kWh"), ("_kg_per_device", "kg CO2e"), ("_kg", "kg CO2e"), ("_g_per_run", "g CO2e"),
    ("_g_per_1000_samples", "g CO2e"), ("_g", "g CO2e"), ("_kwh", "kWh"), ("_wh", "Wh"), ("_seconds", "s"),
    ("_time_s", "s"), ("_s", "s"), ("_hours", "h"), ("_wait_h", "h"), ("_pct", "%"), ("_percentage", "%"),
    ("_points", "percentage points"), ("_mb", "MB"), ("_watts", "W"), ("_years", "years"),
)


KNOWN_UNITS = {"%", "s", "h", "MB", "W", "g", "kg", "g CO2e", "kg CO2e", "kWh", "Wh", "g/kWh", "samples/s", "years",
               "percentage points"}


def _unit(key: str, description: str, is_time: bool) -> str:
    """From how the key's name ends, else from a unit in brackets in its meaning."""
    if is_time:
        return "UTC time (ISO-8601)"
    named = next((unit for suffix, unit in UNITS if key.endswith(suffix)), "")
    said = [unit for unit in re.findall(r"\(([^()]{1,20})\)", description or "") if unit in KNOWN_UNITS]
    return named or (said[0] if said else "")


def _is_instant(annotation: Any, metadata: list[Any] = ()) -> bool:
    """An Instant (artifacts.py): epoch seconds in code, ISO-8601 text in the file."""
    tp, inner = _unwrap(annotation)
    if any(type(item).__name__ == "WrapValidator" for item in [*metadata, *inner]):
        return True
    return any(_is_instant(arg) for arg in typing.get_args(tp))


def artifact_rows(model: type, prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """(key, type, unit, meaning) of every field of `model`, its sections' fields after their own row."""
    fields = [
        (field.alias or name, field.annotation, field.metadata, field.description)
        for name, field in model.model_fields.items()
    ]
    fields += [(name, field.return_type, [], field.description) for name, field in model.model_computed_fields.items()]
    for key, annotation, metadata, description in fields:
        path = f"{prefix}{key}"
        inner = _inner_model(annotation)
        is_time = _is_instant(annotation, metadata)
        kind = render_type(annotation)[0]
        if is_time:
            kind = kind.replace("float", "time")
        meaning = description or (inspect.cleandoc(inner.__dict__.get("__doc__") or "") if inner else "")
        yield path, kind, _unit(key, meaning, is_time), meaning.replace("\n", " ")
        if inner is not None:
            below = "[]." if kind.startswith("list of") else "."
            yield from artifact_rows(inner, f"{path}{below}")


def artifacts_page() -> str:
    import importlib

    lines = [
        "# Artifact reference",
        "",
        "Generated from the artifacts' models at every docs build, by `docs/gen_reference.py`: each file a stage",
        "hands to another has one pydantic model, one writer and one reader (`model_validate`), so this page cannot",
        "drift from what is written. A file that is not what its model says (edited, cut short, written by another",
        "version) is refused in one line naming it and what to run again. Times are ISO-8601 UTC in the files. What",
        "changed in these files is in the [changelog](../changelog.md).",
        "",
    ]
    for path, module, name, writer, readers in ARTIFACTS:
        model = getattr(importlib.import_module(module), name)
        doc = inspect.cleandoc(model.__doc__ or "").replace("\n", " ")
        lines += [f"## `{path}`", "", doc, "", f"Model `{module}.{name}`; written by {writer}; read by {readers}.", ""]
        lines += ["| key | type | unit | meaning |", "|---|---|---|---|"]
        for row in artifact_rows(model, ""):
            cells = (f"`{row[0]}`", row[1], row[2], _plain(row[3]))
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


GENERATORS = {
    "reference/params.md": params_page,
    "reference/cli.md": cli_page,
    "reference/artifacts.md": artifacts_page,
}


# ---- mkdocs hook and command line ------------------------------------------------------------------------------


def stale_pages(docs: Path = ROOT / "docs") -> list[str]:
    """The generated pages whose committed text differs from what the code generates now."""
    return [
        uri
        for uri, make in GENERATORS.items()
        if not (docs / uri).is_file() or (docs / uri).read_text(encoding="utf-8") != make()
    ]


def on_pre_build(config: Any) -> None:
    """Fails a strict build on a reference page out of date with the code."""
    import logging

    log = logging.getLogger("mkdocs.hooks.gen_reference")
    for uri in stale_pages(Path(config["docs_dir"])):
        log.warning(f"docs/{uri} is out of date with the code: run python docs/gen_reference.py")


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print("usage: python docs/gen_reference.py [--check]", file=sys.stderr)
        return 2
    if argv:
        stale = stale_pages()
        for uri in stale:
            print(f"docs/{uri} is out of date with the code: run python docs/gen_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for uri, make in GENERATORS.items():
        target = ROOT / "docs" / uri
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(make(), encoding="utf-8")
        print(target.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
