"""The ``turnout`` command: chat from the terminal, and check a config file.

```
turnout chat MODEL "prompt" [--config FILE] [--system TEXT] [--max-tokens N] [--no-stream]
turnout config check [FILE]
turnout config schema
turnout usage [--ledger FILE | --config FILE] [--since YYYY-MM-DD] [--json | --csv | --plain | --rich]
```
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._secrets import mask_url
from .errors import AllTargetsFailedError, TurnoutError
from .types import ChatResponse, Message

__all__ = ["main", "route_line"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnout", description="Route chat requests to LLM providers.")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="send one chat request and stream the answer")
    chat.add_argument("model", help='an alias from [models], or "<provider>:<model-id>"')
    chat.add_argument("prompt", help="the user message")
    chat.add_argument("--config", help="config file (default: ./turnout.toml or $TURNOUT_CONFIG)")
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--max-tokens", type=int, default=None)
    chat.add_argument("--temperature", type=float, default=None)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    config = commands.add_parser("config", help="work with config files")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file")
    check.add_argument("file", nargs="?", help="config file (default: ./turnout.toml or $TURNOUT_CONFIG)")
    config_commands.add_parser("schema", help="print the config file's JSON schema")
    usage = commands.add_parser("usage", help="spending totals by day, provider and model, from the ledger")
    usage.add_argument("--ledger", help="the ledger file (default: [ledger] path, $TURNOUT_LEDGER, the data dir)")
    usage.add_argument("--config", help="read [ledger] from this config file")
    usage.add_argument("--since", help="only days on or after YYYY-MM-DD")
    form = usage.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--csv", action="store_true", help="print CSV")
    form.add_argument("--plain", action="store_true", help="plain-text columns even on a terminal")
    form.add_argument("--rich", action="store_true", help="a rich table even when not on a terminal")
    return parser


def route_line(reply: ChatResponse) -> str:
    """One line saying which targets were tried, what answered, the tokens and the cost."""
    tried = " -> ".join(f"{a.provider}:{a.model} {'ok' if a.outcome == 'ok' else a.outcome}" for a in reply.attempts)
    usage = reply.usage
    tokens = f"{usage.prompt_tokens if usage.prompt_tokens is not None else '?'} in / " + (
        f"{usage.completion_tokens if usage.completion_tokens is not None else '?'} out"
    )
    cost = str(reply.cost) if reply.cost is not None else "unknown (no price configured)"
    return f"route: {tried}\ntokens: {tokens}\ncost: {cost}"


def _chat(args: argparse.Namespace) -> int:
    from .client import Client

    messages = [Message(role="system", content=args.system)] if args.system else []
    messages.append(Message(role="user", content=args.prompt))
    options = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    with Client(config=args.config) as client:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "usage":
            from ._usage_cli import usage

            return usage(args)
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
