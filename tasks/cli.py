"""A flow's command line, generated from its pydantic Params model: no hand-written argparse.

Every field becomes an option named after it (``batch_size`` -> ``--batch-size``) whose help
shows the field's description, its type or choices, its constraints and its default:

* ``bool`` -> ``--flag`` / ``--no-flag``; ``Literal[...]`` and enums -> one of the choices;
* ``list[...]`` -> one or more values after the option (``--eps 0.1 0.2``);
* ``dict[str, X]`` -> ``--name KEY=VALUE``, repeated;
* ``X | None`` -> the option may be left out (the default stands, usually "empty");
* a nested model -> one option per sub-field, dotted: ``task_runner.n_workers`` is
  ``--task-runner.n-workers`` (dotted, not prefixed, so no sub-field can collide with a field).

A field called ``preset`` (rqa-sweep, two-stage-eval) is an ordinary choice. A model without one
may be given ``presets={name: {field: value}}``: ``--preset NAME`` then sets those fields, and
options given explicitly win. ``aliases`` keep older spellings working (``--data`` for
``--data-path``). Only options given on the command line reach the model, so no arguments give
exactly ``Model()``: the defaults live once, in the model.

Values are validated by the model itself; its errors are rewritten in plain words naming the
option, the constraint and the value (``--batch-size: must be at least 1 (got 0)``), one
``error:`` line each, with exit code 2 (argparse's code for a bad command line).

Example:
    >>> from pydantic import BaseModel, Field
    >>> class P(BaseModel):
    ...     batch_size: int = Field(8, ge=1, description="Items per call.")
    >>> parse_params(P, ["--batch-size", "4"])
    P(batch_size=4)
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["ParamsError", "build_parser", "parse_params", "run_cli"]

_BOUNDS = (
    ("gt", "> {}"),
    ("ge", ">= {}"),
    ("lt", "< {}"),
    ("le", "<= {}"),
    ("min_length", "at least {} values"),
    ("max_length", "at most {} values"),
    ("pattern", "matching {}"),
    ("multiple_of", "a multiple of {}"),
)


class ParamsError(ValueError):
    """Command-line values the Params model refuses; one plain message per problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class _Option:
    path: tuple[str, ...]  # field names from the top model down
    flags: tuple[str, ...]  # option strings, the generated one first
    kind: str  # "bool", "list", "dict" or "scalar"
    choices: tuple[Any, ...] | None


# --- reading a field's type ----------------------------------------------------------------------


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return tp, False


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X, ...]`` -> (X, constraint objects)."""
    meta: list[Any] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        for m in extra:
            meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return tp, meta


def _choices(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(m.value for m in tp)
    return None


def _model(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _bounds(meta: Sequence[Any]) -> list[str]:
    out = []
    for m in meta:
        for attr, words in _BOUNDS:
            v = getattr(m, attr, None)
            if v is not None and not (attr == "min_length" and v == 1):  # nargs="+" says so
                out.append(words.format(v))
        if getattr(m, "allow_inf_nan", None) is False:
            out.append("finite")
    return out


def _type_name(tp: Any) -> str:
    choices = _choices(tp)
    if choices is not None:
        return "{" + ",".join(str(c) for c in choices) + "}"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "empty"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --- building the parser -------------------------------------------------------------------------


def _flag(path: tuple[str, ...]) -> str:
    return "--" + ".".join(p.replace("_", "-") for p in path)


def _add_fields(
    target: Any,
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    prefix: tuple[str, ...],
    aliases: Mapping[tuple[str, ...], list[str]],
    options: list[_Option],
) -> None:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        tp, optional = _strip_optional(field.annotation)
        tp, meta = _strip_annotated(tp)
        nested = _model(tp)
        if nested is not None:
            title = f"{'.'.join(path)} ({nested.__name__})"
            doc = (field.description or (nested.__doc__ or "").split("\n\n")[0]).strip()
            group = parser.add_argument_group(title, doc.replace("%", "%%"))
            _add_fields(group, parser, nested, path, aliases, options)
            continue
        flags = (_flag(path), *aliases.get(path, []))
        dest = ".".join(path)
        words = [(field.description or "").strip()]
        origin = typing.get_origin(tp)
        choices = _choices(tp)
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
        if tp is bool:
            kind = "bool"
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple, set, frozenset):
            kind = "list"
            item, item_meta = _strip_annotated((typing.get_args(tp) or (str,))[0])
            choices = _choices(item)
            kwargs.update(
                nargs="+", metavar=_type_name(item) if choices else _type_name(item).upper()
            )
            each = ", ".join(_bounds(item_meta))
            words.append(
                f"[one or more {_type_name(item)}" + (f", each {each}" if each else "") + "]"
            )
        elif origin is dict:
            kind = "dict"
            _, value_tp = typing.get_args(tp) or (str, str)
            kwargs.update(action="append", metavar="KEY=VALUE")
            words.append(f"[repeat for each key; values {_type_name(value_tp)}]")
        else:
            kind = "scalar"
            kwargs["metavar"] = _type_name(tp) if choices else _type_name(tp).upper()
        bounds = _bounds([*meta, *field.metadata])
        if bounds:
            words.append("[" + ", ".join(bounds) + "]")
        words.append(f"(default: {_default_text(field)})")
        kwargs["help"] = " ".join(w for w in words if w).replace("%", "%%")
        target.add_argument(*flags, **kwargs)
        options.append(_Option(path, flags, kind, choices))


def build_parser(
    model: type[BaseModel],
    *,
    prog: str | None = None,
    description: str | None = None,
    aliases: Mapping[str, str] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    epilog: str | None = None,
) -> tuple[argparse.ArgumentParser, list[_Option]]:
    """The argparse parser of ``model`` and the options it holds (see the module docstring).

    Args:
        aliases: extra option string -> dotted field path (``{"--data": "data_path"}``).
        presets: ``--preset NAME`` values, for a model without a ``preset`` field.
    """
    by_path: dict[tuple[str, ...], list[str]] = {}
    for flag, path in (aliases or {}).items():
        by_path.setdefault(tuple(path.split(".")), []).append(flag)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if presets:
        if "preset" in model.model_fields:
            raise ValueError(f"{model.__name__} has a preset field: give no presets= as well")
        parser.add_argument(
            "--preset",
            dest="__preset__",
            choices=sorted(presets),
            default=argparse.SUPPRESS,
            help="Named set of values; options given explicitly win (default: none).",
        )
    options: list[_Option] = []
    _add_fields(parser, parser, model, (), by_path, options)
    known = {o.path for o in options}
    unknown = [
        f"{flag} -> {'.'.join(p)}" for p, fl in by_path.items() if p not in known for flag in fl
    ]
    if unknown:
        raise ValueError(f"aliases name no field of {model.__name__}: {', '.join(unknown)}")
    return parser, options


# --- parsing and plain-word errors ---------------------------------------------------------------


def _value(opt: _Option, raw: Any) -> Any:
    if opt.kind == "dict":
        out = {}
        for item in raw:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ParamsError([f"{opt.flags[0]}: give KEY=VALUE (got {item!r})"])
            out[key] = value
        return out
    if opt.choices:
        by_text = {str(c): c for c in opt.choices}
        return [by_text.get(v, v) for v in raw] if opt.kind == "list" else by_text.get(raw, raw)
    return raw


def _nest(values: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, v in values.items():
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return out


def _where(loc: tuple[Any, ...], flags: Mapping[tuple[str, ...], str]) -> tuple[str, str]:
    """The option a pydantic error location belongs to, and what follows it (an item, a key)."""
    for n in range(len(loc), 0, -1):
        path = tuple(str(p) for p in loc[:n])
        if path in flags:
            rest = loc[n:]
            tail = "".join(f" (value {r + 1})" if isinstance(r, int) else f"[{r}]" for r in rest)
            return flags[path], tail
    return "", ""


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _plain(err: Mapping[str, Any]) -> str:
    t, ctx = err["type"], err.get("ctx") or {}
    words = {
        "greater_than": lambda: f"must be greater than {_num(ctx['gt'])}",
        "greater_than_equal": lambda: f"must be at least {_num(ctx['ge'])}",
        "less_than": lambda: f"must be less than {_num(ctx['lt'])}",
        "less_than_equal": lambda: f"must be at most {_num(ctx['le'])}",
        "literal_error": lambda: f"must be one of {ctx['expected']}",
        "enum": lambda: f"must be one of {ctx['expected']}",
        "int_parsing": lambda: "must be a whole number",
        "int_from_float": lambda: "must be a whole number",
        "float_parsing": lambda: "must be a number",
        "finite_number": lambda: "must be a finite number",
        "bool_parsing": lambda: "must be yes or no",
        "too_short": lambda: f"needs at least {ctx['min_length']} value(s)",
        "too_long": lambda: f"takes at most {ctx['max_length']} value(s)",
        "string_pattern_mismatch": lambda: f"must match {ctx['pattern']}",
        "string_too_short": lambda: f"needs at least {ctx['min_length']} character(s)",
        "missing": lambda: "is required",
        "multiple_of": lambda: f"must be a multiple of {ctx['multiple_of']}",
    }
    if t in words:
        return words[t]()
    msg = str(err.get("msg", ""))
    for lead in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(lead)
    return msg


def _got(value: Any) -> str:
    text = str(value)
    return text if text and text.strip() == text and " " not in text else repr(value)


def _messages(exc: ValidationError, flags: Mapping[tuple[str, ...], str]) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        flag, tail = _where(loc, flags)
        text = _plain(err)
        if not flag:  # a rule of the whole model: name the option its message starts with
            lead = text.split(":", 1)[0].split("=", 1)[0].strip()
            field = flags.get((*(str(p) for p in loc), lead))
            if field and text.startswith(f"{lead}:"):
                text = field + text[len(lead) :]
            elif field:
                text = f"{field}: {text}"
            out.append(text)
            continue
        shown = err["type"] not in ("missing", "value_error", "assertion_error")
        got = f" (got {_got(err['input'])})" if shown and "input" in err else ""
        out.append(f"{flag}{tail}: {text}{got}")
    return out


def parse_params(
    model: type[BaseModel],
    argv: Sequence[str] | None = None,
    *,
    parser: tuple[argparse.ArgumentParser, list[_Option]] | None = None,
    **build: Any,
) -> Any:
    """``model`` from a command line (``argv``; default ``sys.argv[1:]``).

    Raises:
        ParamsError: values the model refuses, one plain message per problem.
        SystemExit: ``--help`` (code 0), or an unknown option / missing value (code 2, argparse).
    """
    ap, options = parser or build_parser(model, **build)
    ns = vars(ap.parse_args(argv))
    given = {o.path: _value(o, ns[".".join(o.path)]) for o in options if ".".join(o.path) in ns}
    data = _nest(given)
    preset = ns.get("__preset__")
    if preset is not None:
        data = {**dict(build.get("presets", {})[preset]), **data}
    flags = {o.path: o.flags[0] for o in options}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(_messages(exc, flags)) from None


class _DropTraceback(logging.Filter):
    """Keep a log record's message but drop its traceback when the error is bad input."""

    def __init__(self, kinds: tuple[type[BaseException], ...]):
        super().__init__()
        self.kinds = kinds

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and self.kinds and isinstance(exc, self.kinds):
            record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def quiet_tracebacks(kinds: tuple[type[BaseException], ...]) -> Iterator[None]:
    """While a CLI run lasts, Prefect's loggers log bad input (``kinds``) as its message only.

    Prefect logs a failed flow run with the whole traceback (~30 lines) before the CLI prints its
    one clean ``error:`` line; for bad input the traceback says nothing the message does not. Other
    exceptions keep their tracebacks.
    """
    drop = _DropTraceback(kinds)
    names = ("", "prefect", "prefect.flow_runs", "prefect.task_runs")
    handlers = {h for name in names for h in logging.getLogger(name).handlers}
    for h in handlers:
        h.addFilter(drop)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(drop)


def run_cli(
    flow: Callable[[Any], Any],
    model: type[BaseModel],
    argv: Sequence[str] | None = None,
    *,
    report: Callable[[Any], None] | None = None,
    errors: tuple[type[BaseException], ...] = (),
    **build: Any,
) -> int:
    """Parse ``argv`` into ``model``, run ``flow(params)``, then ``report(result)``; the exit code.

    2 (one ``error:`` line per problem, then a pointer to ``--help``) when the values are refused or
    the flow raises one of ``errors`` (bad input found once the data is read); 0 otherwise.
    """
    parser = build_parser(model, **build)
    try:
        params = parse_params(model, argv, parser=parser, presets=build.get("presets"))
    except ParamsError as exc:
        for m in exc.messages:
            print(f"error: {m}", file=sys.stderr)
        print(f"({parser[0].prog} --help lists every option)", file=sys.stderr)
        return 2
    try:
        with quiet_tracebacks(errors):
            out = flow(params)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report is not None:
        report(out)
    return 0
