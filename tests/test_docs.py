"""Every fenced code block in README.md and docs/*.md is run, or, where it cannot run here, parsed.

How each block is checked (one test per block, ``test_block[docs/errors.md:58-python]``):

- ``python``: executed. The blocks of one page run in order in one namespace, as a reader would
  type them, so a later block uses the names of an earlier one. Top-level ``await`` runs on the
  page's event loop. A block that defines ``test_*`` functions is run with pytest.
- ``toml``: a block with a ``[providers]`` table is a whole config and must load with
  `turnout.load_config`; any other block is a fragment, laid over the page's ``turnout.toml``,
  and the result must load.
- ``sh`` / ``bash`` / ``console``: ``turnout ...`` commands run (``turnout.cli.main``) in the
  page's working directory; a command's exit status must be 1 when the page shows an error
  (``turnout: ...``) and 0 otherwise. Other commands are only split with `shlex`.
- ``json``: `json.loads`. ``text``: output shown to the reader, not checked unless marked.

Each page runs in a temporary working directory holding its ``turnout.toml``, with fake servers
(`FakeServer`, `FakeTGIServer`) standing in for the hosted providers: the docs' configs read
their base URLs from environment variables (``${OPENAI_BASE_URL:-https://api.openai.com/v1}``),
which this module points at the fakes. `SETUPS` lists what a page assumes beyond that.

An HTML comment on the line before a fence changes how it is checked:

- ``<!-- docs-test: skip (why) -->``: cannot run here; only parsed (`ast.parse`, `tomllib`,
  `shlex`, `json`).
- ``<!-- docs-test: turnout.toml -->``: the page's ``./turnout.toml`` (else README.md's).
- ``<!-- docs-test: fragment -->``: a toml block with ``[providers]`` that still continues the
  page's ``turnout.toml``.
- ``<!-- docs-test: file NAME -->``: written to ``NAME`` in the working directory (a module a later
  block imports).
- ``<!-- docs-test: output -->``: a console block whose output must match exactly.
- ``<!-- docs-test: equals EXPR -->``: a json block equal to what ``EXPR`` gives in the page's
  namespace.
- ``<!-- docs-test: logged -->``: a text block whose lines the page's calls logged on the
  ``turnout`` logger.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import io
import json
import linecache
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout.testing import FakeAzureServer, FakeServer, FakeTGIServer, Fault, Reply, ToolCallSpec

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LLAMA = "meta-llama/Llama-2-7b-chat-hf"
KEY = "sk-docs-test-4e1f"
#: What the docs' vLLM servers serve.
VLLM_MODELS = [LLAMA, "BAAI/bge-small-en-v1.5"]

_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>```+)(?P<lang>[\w-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[\w.-]+)\s*(?P<arg>.*?)\s*-->\s*$")
_KINDS = {"skip", "turnout.toml", "fragment", "file", "output", "equals", "logged"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str  # relative to the repository root
    line: int  # 1-based line of the first line of code
    lang: str
    code: str
    directive: str | None = None
    arg: str = ""  # what follows the directive's name

    @property
    def why(self) -> str | None:
        """The reason of a ``skip (why)``."""
        match = re.fullmatch(r"\((.+)\)", self.arg)
        return match.group(1) if match else None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}-{self.lang or 'plain'}"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the directive on the line before each."""
    page = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence, lang = len(match["indent"]), match["fence"], match["lang"]
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        code = "\n".join(line[indent:] for line in lines[start:end]) + "\n"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        directive = _DIRECTIVE.match(before)
        blocks.append(
            Block(
                page,
                start + 1,
                lang,
                code,
                *(directive["kind"], directive["arg"]) if directive else (),
            )
        )
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in parse_blocks(page)]
#: The turnout.toml of a page that shows none of its own: the README's quickstart.
_README_TOML = next((b.code for b in BLOCKS if b.page == "README.md" and b.directive == "turnout.toml"), "")


# --- What a page assumes --------------------------------------------------------------------------

DEFAULT_PRELUDE = """
import turnout
client = turnout.Client.from_config("turnout.toml")
aclient = turnout.AsyncClient.from_config("turnout.toml")
"""


@dataclass
class Servers:
    """The fakes standing in for the hosted providers while a page runs."""

    openai: FakeServer
    vllm: FakeServer
    together: FakeServer
    tgi: FakeTGIServer
    azure: FakeAzureServer

    def env(self) -> dict[str, str]:
        """The environment variables the docs' configs read."""
        return {
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": self.openai.base_url,
            "VLLM_BASE_URL": self.vllm.base_url,
            "TOGETHER_API_KEY": KEY,
            "TOGETHER_BASE_URL": self.together.base_url,
            "HF_TOKEN": "hf_docs_test",
            "HF_ENDPOINT_URL": self.tgi.url,
            "AZURE_OPENAI_API_KEY": KEY,
            "AZURE_OPENAI_ENDPOINT": self.azure.endpoint,
        }


@dataclass(frozen=True)
class Setup:
    """What one page assumes besides its ``turnout.toml`` and the fake servers."""

    #: Python run before the page's first block, in its namespace.
    prelude: str = DEFAULT_PRELUDE
    #: Files written to the working directory (``None`` as content: the page's turnout.toml).
    files: Mapping[str, str | None] = field(default_factory=dict)
    #: vLLM fake's runner (``"pooling"`` serves embeddings).
    vllm_runner: str = "generate"
    #: Scripts the fakes' answers before the page runs.
    script: Callable[[Servers], None] | None = None


def _script_tools(servers: Servers) -> None:
    call = ToolCallSpec("get_weather", '{"city": "Paris"}', id="call_1")
    custom = ToolCallSpec("run_sql", "SELECT count(*) FROM t", type="custom")
    servers.openai.enqueue(
        Reply(tool_calls=[call]),  # client.chat(..., tools=[get_weather])
        Reply(tool_calls=[call]),  # sending the results back yourself: the call,
        Reply("It is 18 C and sunny in Paris."),  # and the answer
        Reply(tool_calls=[custom]),  # a custom tool call,
        Reply("There are 42 rows."),  # and the answer to its result
        Reply(tool_calls=[call]),  # client.stream(..., tools=[get_weather])
        Reply(tool_calls=[call, ToolCallSpec("get_weather", '{"city": "Oslo"}')]),  # run_tools, round 1
        Reply("It is 18 C and sunny in Paris and in Oslo."),  # run_tools, round 2
    )


def _script_azure(servers: Servers) -> None:
    servers.azure.enqueue(Fault.content_filter({"violence": "high"}))  # the refused prompt


def _script_errors(servers: Servers) -> None:
    # The first block's call: three rate limits (every attempt at openai), then the route falls back.
    servers.openai.enqueue(*[Fault.rate_limit(retry_after_ms=1)] * 3)


def _script_structured(servers: Servers) -> None:
    servers.openai.enqueue(
        Reply('{"city": "Oslo", "high_c": 21, "sky": "sunny"}'),
        Reply('{"city": "Lima", "high_c": 19, "sky": "cloudy"}'),
        Reply('{"city": "Bergen", "high_c": 12, "sky": "rain"}'),  # output_retries=0
        Reply('{"city": "Mars", "sky": "dusty"}'),  # the Errors block: a reply that does not fit,
        Reply('{"city": "Mars", "sky": "dusty"}'),  # and its re-ask
    )


def _script_compare(servers: Servers) -> None:
    # The worked example's turnout.compare(..., concurrency=1): each model's answers in file order.
    for text in ("Paris", "B", "144", "Llamas graze the hill"):
        servers.openai.enqueue(Reply(text, prompt_tokens=30, completion_tokens=4))
    for text in ("Paris.", "The answer is B", "12 x 12 = 144", "Soft wool in the wind"):
        servers.tgi.enqueue(Reply(text, prompt_tokens=40, completion_tokens=6))


SETUPS: dict[str, Setup] = {
    "docs/getting-started.md": Setup(files={"conf/turnout.toml": None}),
    "docs/cli.md": Setup(
        prelude="",
        files={"bad.toml": '[providers.openai]\ntype = "openai"\napi_key = "sk-x"\ntimout = 30\n'},
    ),
    "docs/embeddings.md": Setup(vllm_runner="pooling"),
    "docs/tools.md": Setup(script=_script_tools),
    "docs/errors.md": Setup(script=_script_errors),
    "docs/azure.md": Setup(script=_script_azure),
    "docs/structured-output.md": Setup(script=_script_structured),
    "docs/compare.md": Setup(prelude="", script=_script_compare),
    "docs/testing.md": Setup(
        prelude="from turnout.testing import FakeServer, Fault, Reply\nserver = FakeServer().start()\n"
    ),
}


# --- Running a page --------------------------------------------------------------------------------


class PageRun:
    """One page's working directory, fake servers, namespace and event loop, run block by block."""

    def __init__(self, page: str, tmp: Path) -> None:
        self.page = page
        self.blocks = [b for b in BLOCKS if b.page == page]
        self.setup = SETUPS.get(page, Setup())
        self.cwd = tmp / "work"
        self.cwd.mkdir(parents=True)
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.results: dict[int, Exception | None] = {}
        self.made: list[Any] = []  # every Client, AsyncClient and FakeServer the page made
        self.logged: list[str] = []  # what the page's calls logged on the turnout logger
        self._stack = contextlib.ExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        tomls = [b for b in self.blocks if b.directive == "turnout.toml"]
        assert len(tomls) <= 1, f"{page}: more than one <!-- docs-test: turnout.toml --> block"
        self.turnout_toml = tomls[0].code if tomls else _README_TOML

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The page's environment, working directory and import path, for the time of one block."""
        with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
            for name, value in self.env.items():
                patch.setenv(name, value)
            patch.delenv("TURNOUT_CONFIG", raising=False)
            patch.chdir(self.cwd)
            patch.syspath_prepend(str(self.cwd))
            # A reader sees this warning (docs/cost.md); not every example prices its models.
            warnings.filterwarnings("ignore", category=turnout.CostUnknownWarning)
            for cls in (turnout.Client, turnout.AsyncClient, FakeServer):  # remember each, to close it
                patch.setattr(cls, "__init__", _recording_init(cls.__init__, self.made))
            logger = logging.getLogger("turnout")
            handler, level = _Recorder(self.logged), logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
            try:
                yield
            finally:
                logger.removeHandler(handler)
                logger.setLevel(level)

    def start(self) -> None:
        self._started = True
        servers = Servers(
            openai=self._stack.enter_context(FakeServer("openai", api_key=KEY)),
            vllm=self._stack.enter_context(
                FakeServer("vllm", models=VLLM_MODELS, runner=self.setup.vllm_runner)  # type: ignore[arg-type]
            ),
            together=self._stack.enter_context(FakeServer("openai", api_key=KEY)),
            tgi=self._stack.enter_context(FakeTGIServer(LLAMA)),
            azure=self._stack.enter_context(
                FakeAzureServer({"my-gpt4o-mini": "gpt-4o-mini", "embed-small": "text-embedding-3-small"}, api_key=KEY)
            ),
        )
        self.env = {**servers.env(), "TURNOUT_LEDGER": str(self.cwd.parent / "ledger.sqlite3")}
        (self.cwd / "turnout.toml").write_text(self.turnout_toml, encoding="utf-8")
        for name, content in self.setup.files.items():
            (self.cwd / name).parent.mkdir(parents=True, exist_ok=True)
            (self.cwd / name).write_text(self.turnout_toml if content is None else content, encoding="utf-8")
        if self.setup.script is not None:
            self.setup.script(servers)
        self.servers = servers
        self._registered = dict(_provider_registry())
        self._modules = set(sys.modules)
        if self.setup.prelude:
            with self.active():
                exec(
                    compile(self.setup.prelude, f"<prelude of {self.page}>", "exec", dont_inherit=True), self.namespace
                )

    def run(self, index: int) -> None:
        """Run the page's blocks up to ``index``; raise what block ``index`` raised."""
        if not self._started:
            self.start()
        for i in range(len(self.results), index + 1):
            try:
                with self.active():
                    check_block(self.blocks[i], self)
            except Exception as exc:  # reported by that block's own test
                self.results[i] = exc
            else:
                self.results[i] = None
        error = self.results[index]
        if error is not None:
            raise error

    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def close(self) -> None:
        if not self._started:
            return
        with self.active():
            for made in self.made:
                if isinstance(made, turnout.AsyncClient):
                    self.loop().run_until_complete(made.aclose())
                else:
                    made.close()
        if self._loop is not None:
            self._loop.close()
        self._stack.close()
        registry = _provider_registry()
        registry.clear()
        registry.update(self._registered)
        for name in set(sys.modules) - self._modules:  # modules the page wrote and imported
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if module_file.startswith(str(self.cwd)):
                del sys.modules[name]


class _Recorder(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "turnout":
            self.messages.append(record.getMessage())


def _recording_init(init: Callable[..., None], made: list[Any]) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    return __init__


def _provider_registry() -> dict[str, Any]:
    import turnout.providers as providers

    registry: dict[str, Any] = providers._registered  # a page may register a plugin type
    return registry


# --- Checking one block --------------------------------------------------------------------------


def check_block(block: Block, run: PageRun) -> None:
    """Run or parse one block (see the module docstring)."""
    if block.directive == "file":
        assert block.arg, f"{block.id}: <!-- docs-test: file NAME --> needs a file name"
        (run.cwd / block.arg).write_text(block.code, encoding="utf-8")
    if block.directive == "skip" or block.directive == "file":
        parse_block(block)
        return
    checkers: dict[str, Callable[[Block, PageRun], object]] = {
        "python": check_python,
        "toml": check_toml,
        "sh": check_shell,
        "bash": check_shell,
        "console": check_shell,
        "json": check_json,
        "text": check_text,
        "": lambda b, _: None,
    }
    assert block.lang in checkers, f"{block.id}: no checker for ```{block.lang}: add one, or mark the block skip"
    checkers[block.lang](block, run)


def check_json(block: Block, run: PageRun) -> None:
    data = json.loads(block.code)
    if block.directive == "equals":  # the JSON is what a Python expression of the page gives
        assert data == eval(block.arg, run.namespace), f"{block.id}: not what `{block.arg}` gives"


def check_text(block: Block, run: PageRun) -> None:
    """Text is output shown to the reader; ``logged`` text must be what the page's calls logged."""
    if block.directive == "logged":
        for line in block.code.strip().splitlines():
            assert line in run.logged, f"{block.id}: turnout never logged {line!r}; it logged {run.logged}"


def parse_block(block: Block) -> None:
    if block.lang == "python":
        ast.parse(block.code, block.id)
    elif block.lang == "toml":
        tomllib.loads(block.code)
    elif block.lang == "json":
        json.loads(block.code)
    elif block.lang in ("sh", "bash", "console"):
        for command in shell_commands(block):
            shlex.split(command, comments=True)


def check_python(block: Block, run: PageRun) -> None:
    filename = f"{ROOT / block.page}:{block.line}"
    source = "\n" * (block.line - 1) + block.code  # tracebacks point at the Markdown's lines
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    tree = ast.parse(source, filename)
    if any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_") for node in tree.body):
        run_with_pytest(block, run)
        return
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    if code.co_flags & 0x80:  # CO_COROUTINE: the block awaits at top level
        run.loop().run_until_complete(eval(code, run.namespace))
    else:
        exec(code, run.namespace)


def run_with_pytest(block: Block, run: PageRun) -> None:
    """A block written as a pytest module: run it as one, in a fresh interpreter."""
    test_file = run.cwd / f"test_{Path(block.page).stem.replace('-', '_')}_{block.line}.py"
    test_file.write_text(block.code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            test_file.name,
        ],
        cwd=run.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{block.id}: pytest failed\n{result.stdout}\n{result.stderr}"


def check_toml(block: Block, run: PageRun) -> None:
    data = tomllib.loads(block.code)
    if block.directive == "turnout.toml" or ("providers" in data and block.directive != "fragment"):
        path = run.cwd.parent / f"block-{block.line}.toml"
        path.write_text(block.code, encoding="utf-8")
        turnout.load_config(path)
    else:
        base = tomllib.loads(run.turnout_toml)
        turnout.Config.from_dict(_merge(base, data), source=f"{block.id} over the page's turnout.toml")


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top``'s tables laid over ``base``'s: a named entry (``[models.fast]``) replaces the one of that name."""
    merged = dict(base)
    for key, value in top.items():
        under = merged.get(key)
        merged[key] = {**under, **value} if isinstance(under, dict) and isinstance(value, Mapping) else value
    return merged


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: ``$ `` lines of a console block, every line of a script."""
    if block.lang == "console":
        return [line[2:] for line in block.code.splitlines() if line.startswith("$ ")]
    return [line for line in block.code.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _console_outputs(block: Block) -> list[str]:
    """The output the page shows after each ``$`` command."""
    outputs: list[list[str]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            outputs.append([])
        elif outputs:
            outputs[-1].append(line)
    return ["\n".join(lines).strip() for lines in outputs]


def check_shell(block: Block, run: PageRun) -> None:
    commands = shell_commands(block)
    shown = _console_outputs(block) if block.lang == "console" else [""] * len(commands)
    for command, expected in zip(commands, shown, strict=True):
        words = shlex.split(command, comments=True)
        if not words or words[0] != "turnout":
            continue  # not turnout's: only parsed
        target = None
        if ">" in words:
            words, target = words[: words.index(">")], words[words.index(">") + 1]
        from turnout.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(words[1:])
        want = 1 if expected.startswith("turnout:") else 0
        assert status == want, (
            f"{block.id}: `{command}` exited with {status}, not {want}\n{out.getvalue()}{err.getvalue()}"
        )
        if target is not None:
            (run.cwd / target).write_text(out.getvalue(), encoding="utf-8")
        if block.directive == "output":
            assert (out.getvalue() + err.getvalue()).strip() == expected, f"{block.id}: `{command}` printed otherwise"


# --- The tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PageRun]]:
    runs: dict[str, PageRun] = {}
    try:
        yield runs
    finally:
        for run in runs.values():
            run.close()
    left = [thread.name for thread in threading.enumerate() if thread.name.startswith("turnout-fake")]
    assert not left, f"the docs left fake servers running: {left}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block(block: Block, page_runs: dict[str, PageRun], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The block runs (or, marked skip, parses), after the blocks before it on its page."""
    run = page_runs.get(block.page)
    if run is None:
        run = page_runs[block.page] = PageRun(block.page, tmp_path_factory.mktemp(Path(block.page).stem))
    index = run.blocks.index(block)
    try:
        run.run(index)
        if index == len(run.blocks) - 1 and run.setup.script is not None:
            left = {name: server.pending() for name, server in vars(run.servers).items() if server.pending()}
            assert not left, f"{block.page}: its blocks left scripted answers unused: {left}"
    finally:
        if index == len(run.blocks) - 1:
            run.close()
            del page_runs[block.page]


def test_config_hint_names_a_function_that_exists() -> None:
    """The hint for an hourly price without a throughput names an importable function."""
    with pytest.raises(turnout.ConfigError) as caught:
        turnout.Config.from_dict({"prices": {"local:m": {"usd_per_hour": 1}}})
    hint = re.search(r"turnout(\.\w+)+", str(caught.value))
    assert hint is not None, str(caught.value)
    module, _, name = hint.group().rpartition(".")
    assert callable(getattr(importlib.import_module(module), name, None)), hint.group()


def test_readme_shows_the_default_turnout_toml() -> None:
    assert _README_TOML, "README.md: mark its quickstart config with <!-- docs-test: turnout.toml -->"


def test_directives_are_known_and_skips_say_why() -> None:
    for block in BLOCKS:
        if block.directive is None:
            continue
        assert block.directive in _KINDS, f"{block.id}: unknown directive {block.directive!r}"
        if block.directive == "skip":
            assert block.why, f"{block.id}: say why in <!-- docs-test: skip (why) -->"


def test_the_collector_finds_every_block() -> None:
    """As many blocks as opening fences, so a fence the parser misreads cannot hide a block."""
    for page in PAGES:
        fences = sum(1 for line in page.read_text(encoding="utf-8").splitlines() if _FENCE.match(line))
        assert 2 * len([b for b in BLOCKS if b.page == page.relative_to(ROOT).as_posix()]) == fences, page
