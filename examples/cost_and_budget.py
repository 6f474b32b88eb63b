"""Cost control: an hourly-priced self-hosted Llama 2, an estimate, a budget and the ledger."""

from __future__ import annotations

import tempfile
from pathlib import Path

import turnout
from turnout.cli import main as turnout_cli
from turnout.testing import FakeServer, Reply

LLAMA = "meta-llama/Llama-2-7b-chat-hf"
folder = Path(tempfile.mkdtemp())

with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as server:
    config_file = folder / "turnout.toml"
    config_file.write_text(f"""
[providers.local]
type = "vllm"
base_url = "{server.base_url}"

[models.llama]
targets = ["local:{LLAMA}"]
budget = {{ max_usd = 0.002 }}

# Llama 2 7B on one A10G ($1.00/h) generating 120 tokens/s: $2.3148... per million tokens out
[prices."local:{LLAMA}"]
usd_per_hour = 1.00
tokens_per_second = 120

[ledger]
path = "{(folder / "ledger.sqlite3").as_posix()}"
""")
    server.enqueue(Reply("Llamas hum.", completion_tokens=400))

    with turnout.Client.from_config(config_file) as client:
        messages = [{"role": "user", "content": "Tell me one fact about llamas."}]
        estimate = client.estimate_cost("llama", messages, max_tokens=500)
        (target,) = estimate.targets
        print(
            f"estimate: {target.prompt_tokens} prompt tokens (exact: {not target.estimated}), "
            f"${target.low:.7f} to ${target.high:.7f}"
        )

        reply = client.chat("llama", messages, max_tokens=500)
        print(f"actual: {reply.cost}")

        try:
            client.chat("llama", messages, max_tokens=1000)  # worst case > what is left
        except turnout.BudgetExceededError as exc:
            print(f"refused before sending: {exc.budget} has ${exc.remaining:.7f} left")
        assert client.budgets is not None
        print("budget:", *(f"{s.name} spent ${s.spent:.7f}" for s in client.budgets.status()))

turnout_cli(["usage", "--config", str(config_file)])
