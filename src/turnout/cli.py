"""The ``turnout`` command: chat from the terminal, and check a config file.

```
turnout --version
turnout chat MODEL "prompt" | - [--config FILE] [--system TEXT] [--max-tokens N] [--no-stream | --json]
turnout models [--config FILE] [--json]
turnout health [--config FILE] [--json]
turnout config check [FILE]
turnout config schema
turnout usage [--ledger FILE | --config FILE] [--since DATE] [--until DATE] [--by KEYS]
              [--json | --csv | --plain | --rich]
turnout compare PROMPTS.jsonl | --sample --models A,B [--repeat N] [--concurrency N] [--judge MODEL]
                [--max-usd N] [--html FILE] [--json] [--config FILE]
turnout batch INPUT -o OUTPUT [--model M] [--concurrency N] [--max-usd X] [--dry-run] [--provider-batch]
```

Ctrl-C exits with status 130 and no traceback; warnings print as one line, ``turnout: warning: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from ._secrets import mask_url
from ._version import __version__
from .errors import AllTargetsFailedError, TurnoutError
from .types import USD, ChatResponse, Message

__all__ = ["main", "route_line"]


_CONFIG_HELP = "config file (default: ./turnout.toml or $TURNOUT_CONFIG)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnout", description="Route chat requests to LLM providers.")
    parser.add_argument("--version", action="version", version=f"turnout {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="send one chat request and stream the answer")
    chat.add_argument("model", help='an alias from [models], or "<provider>:<model-id>"')
    chat.add_argument("prompt", help='the user message; "-" reads it from standard input')
    chat.add_argument("--config", help=_CONFIG_HELP)
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--max-tokens", type=int, default=None)
    chat.add_argument("--temperature", type=float, default=None)
    output = chat.add_mutually_exclusive_group()
    output.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    output.add_argument("--json", action="store_true", help="print the whole reply as JSON (not streamed)")
    for name, text in (
        ("models", "each route's targets, prices per 1M tokens and context windows"),
        ("health", "each route's targets, their circuit state and context pre-check"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", help=_CONFIG_HELP)
        command.add_argument("--json", action="store_true", help="print JSON")
    config = commands.add_parser("config", help="work with config files")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file")
    check.add_argument("file", nargs="?", help="config file (default: ./turnout.toml or $TURNOUT_CONFIG)")
    config_commands.add_parser("schema", help="print the config file's JSON schema")
    usage = commands.add_parser(
        "usage",
        help="spending totals by day, provider and model (or alias), from the ledger",
        description="Sum the spend ledger. The file is --ledger FILE, else $TURNOUT_LEDGER, else [ledger] path "
        "of --config FILE (else $TURNOUT_CONFIG, else ./turnout.toml), else the default under your data "
        "directory: the file the app's Client writes.",
    )
    usage.add_argument("--ledger", help="the ledger file (overrides $TURNOUT_LEDGER and [ledger] path)")
    usage.add_argument(
        "--config", help="read [ledger] from this config file (default: $TURNOUT_CONFIG, ./turnout.toml)"
    )
    usage.add_argument("--since", type=_bound, help="only calls on or after YYYY-MM-DD (UTC) or an ISO datetime")
    usage.add_argument("--until", type=_bound, help="only calls on or before YYYY-MM-DD (all of it) or an ISO datetime")
    usage.add_argument(
        "--by",
        type=_group_keys,
        default=("day", "provider", "model"),
        metavar="KEYS",
        help="group by these comma-separated keys, from day, alias, provider, model, tag:NAME "
        "(default: day,provider,model)",
    )
    form = usage.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--csv", action="store_true", help="print CSV")
    form.add_argument("--plain", action="store_true", help="plain-text columns even on a terminal")
    form.add_argument("--rich", action="store_true", help="a rich table even when not on a terminal")
    from ._compare._cli import add_parser as add_compare

    add_compare(commands, _CONFIG_HELP)
    from ._batch_cli import add_parser

    add_parser(commands)
    return parser


def _bound(value: str) -> str:
    """A ``--since``/``--until`` value, checked (argparse reports a bad one and exits with 2)."""
    from .cost.spend_ledger import parse_bound

    try:
        parse_bound(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _group_keys(value: str) -> tuple[str, ...]:
    from .cost.spend_ledger import GROUP_KEYS, is_tag_key

    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    unknown = [key for key in keys if key not in GROUP_KEYS and not is_tag_key(key)]
    if unknown or not keys or len(set(keys)) != len(keys):
        raise argparse.ArgumentTypeError(
            f"{value!r}: give distinct keys from {', '.join(GROUP_KEYS)} or tag:NAME, e.g. day,alias or tag:tenant"
        )
    return keys


def route_line(reply: ChatResponse) -> str:
    """One line saying which targets were tried, what answered, the tokens and the cost."""
    tried = " -> ".join(f"{a.provider}:{a.model} {'ok' if a.outcome == 'ok' else a.outcome}" for a in reply.attempts)
    usage = reply.usage
    tokens = f"{usage.prompt_tokens if usage.prompt_tokens is not None else '?'} in / " + (
        f"{usage.completion_tokens if usage.completion_tokens is not None else '?'} out"
    )
    cost = _cost_line(reply)
    return f"route: {tried}\ntokens: {tokens}\ncost: {cost}"


def _cost_line(reply: ChatResponse) -> str:
    """The cost in dollars rounded to 1e-10 (hourly prices divide into 28-digit fractions)."""
    c = reply.cost
    if c is None:
        return "unknown (no price configured)"
    total, cost_in, cost_out = (USD(v).display() for v in (c.total, c.input, c.output))
    return f"${total} (in ${cost_in} + out ${cost_out}; {c.source})"


def _prompt(text: str, stdin: TextIO) -> str:
    if text != "-":
        return text
    read = stdin.read()
    if not read.strip():
        raise TurnoutError('the prompt "-" reads standard input, which was empty: pipe the prompt in.')
    return read


def _chat(args: argparse.Namespace) -> int:
    from .client import Client

    messages = [Message(role="system", content=args.system)] if args.system else []
    messages.append(Message(role="user", content=_prompt(args.prompt, sys.stdin)))
    options = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    with Client(config=args.config) as client:
        if args.json:
            print(client.chat(args.model, messages, **options).model_dump_json(indent=2))
            return 0
        if args.no_stream:
            reply = client.chat(args.model, messages, **options)
            print(reply.text)
        else:
            with client.stream(args.model, messages, **options) as stream:
                for chunk in stream:
                    print(chunk.text or "", end="", flush=True)
                print()
                reply = stream.response
    print(route_line(reply), file=sys.stderr)
    return 0


def _config(args: argparse.Namespace) -> int:
    from .config import config_json_schema, find_config_file, load_config

    if args.config_command == "schema":
        print(json.dumps(config_json_schema(), indent=2))
        return 0
    path = args.file or find_config_file()
    if path is None:
        raise TurnoutError("no config file: pass one, create ./turnout.toml, or set TURNOUT_CONFIG.")
    config = load_config(path)
    print(f"{path}: OK")
    for name, provider in sorted(config.providers.items()):
        base_url = mask_url(provider.base_url) if provider.base_url else "(default)"
        print(f"  provider {name}: type={provider.type} base_url={base_url}")
    for alias, route in sorted(config.models.items()):
        print(f"  model {alias}: {' -> '.join(route.targets)}")
    return 0


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as one line, without the Python source line `warnings` shows by default."""
    del category, filename, lineno, line
    print(f"turnout: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (130 after Ctrl-C)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return _run(_parser().parse_args(argv))
        except KeyboardInterrupt:
            print("\nturnout: interrupted", file=sys.stderr)
            return 130


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "batch":
            from ._batch_cli import batch

            return batch(args)
        if args.command == "usage":
            from .cost._usage_cli import usage

            return usage(args)
        if args.command == "compare":
            from ._compare._cli import run as compare

            return compare(args)
        if args.command in ("models", "health"):
            from . import _routes_cli

            return _routes_cli.models(args) if args.command == "models" else _routes_cli.health(args)
        return _chat(args) if args.command == "chat" else _config(args)
    except AllTargetsFailedError as exc:
        print(f"turnout: {exc}", file=sys.stderr)
        for cause in exc.exceptions:
            print(f"  - {cause}", file=sys.stderr)
        return 1
    except TurnoutError as exc:
        print(f"turnout: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
