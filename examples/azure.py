"""Azure OpenAI next to OpenAI: one alias over both, Azure's content filter, and Entra ID tokens.

Runs against two local fake servers (`FakeAzureServer`, `FakeServer`); for the real services put
your resource's endpoint and key in the config instead.
"""

from __future__ import annotations

import turnout
from turnout.testing import FakeAzureServer, FakeServer, Fault, Reply

with FakeAzureServer({"my-mini": "gpt-4o-mini"}, api_key="azure-key") as azure, FakeServer(api_key="sk-x") as openai:
    config = {
        "providers": {
            "azure": {
                "type": "azure",
                "endpoint": azure.endpoint,  # https://<resource>.openai.azure.com
                "api_key": "azure-key",  # "${AZURE_OPENAI_API_KEY}" in turnout.toml
                "api_version": "2024-10-21",
                "deployments": {"gpt-4o-mini": "my-mini"},  # model id -> deployment name
            },
            "openai": {"type": "openai", "base_url": openai.base_url, "api_key": "sk-x"},
        },
        # the same model on both: Azure first, OpenAI when Azure is down
        "models": {"mini": {"targets": ["azure:gpt-4o-mini", "openai:gpt-4o-mini"]}},
    }
    with turnout.Client(config) as client:
        reply = client.chat("mini", "Hello")
        print(f"answered by {reply.provider}; cost {reply.cost}")
        print("sent to:", azure.chat_requests[-1].path + "?" + azure.chat_requests[-1].query)

        # 1. Azure is overloaded: retried, then OpenAI answers
        azure.enqueue(Fault.server_error(503), Fault.server_error(503), Fault.server_error(503))
        reply = client.chat("mini", "Hello")
        print("fallback:", " -> ".join(f"{a.provider} {a.outcome}" for a in reply.attempts))

        # 2. the content filter refuses the prompt: a typed error, not retried elsewhere
        azure.enqueue(Fault.content_filter({"violence": "high"}))
        try:
            client.chat("mini", "something violent")
        except turnout.ContentFilterError as exc:
            print("refused:", exc.categories, exc.status_code)

        # 3. the filter cut the completion off: a reply that says so
        azure.enqueue(Reply("Once upon", finish_reason="content_filter", content_filter={"sexual": "medium"}))
        reply = client.chat("mini", "Tell a story")
        print("filtered:", reply.finish_reason, reply.warnings)

        # 4. a deployment that does not exist names itself and the fix
        try:
            client.chat("azure:gpt-4o", "Hi")
        except turnout.NotFoundError as exc:
            print("not found:", exc.message.split(" (Azure")[0])

# Microsoft Entra ID instead of a key: a token provider, called before every request
# (azure.identity.get_bearer_token_provider(DefaultAzureCredential(),
#  "https://cognitiveservices.azure.com/.default") in a real application)
tokens = iter(["token-1", "token-2"])
with FakeAzureServer({"my-mini": "gpt-4o-mini"}) as azure:
    entra = {
        "type": "azure",
        "endpoint": azure.endpoint,
        "deployments": {"gpt-4o-mini": "my-mini"},
        "token_provider": lambda: next(tokens),
    }
    with turnout.Client({"providers": {"azure": entra}}) as client:
        client.chat("azure:gpt-4o-mini", "one")
        client.chat("azure:gpt-4o-mini", "two")
    print("bearer:", [r.headers["authorization"] for r in azure.chat_requests])
