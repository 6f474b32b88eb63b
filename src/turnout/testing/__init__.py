"""In-process fake OpenAI / vLLM / TGI / Azure OpenAI servers for testing code that calls chat completions.

`FakeServer` listens on 127.0.0.1 and speaks the real wire format (JSON bodies, SSE streams,
error envelopes, rate-limit headers) of the chosen flavor; `FakeTGIServer` speaks Text
Generation Inference's (a Hugging Face Inference Endpoint); `FakeAzureServer` an Azure OpenAI
resource's (deployments, ``api-version``, ``api-key``, content filters). Script them with `Reply` and `Fault`,
then inspect `server.requests`. It needs only the standard library. See docs/testing.md.

Example:
    ```python
    from turnout.testing import FakeServer, Fault, Reply

    with FakeServer(flavor="openai") as server:
        server.enqueue(Fault.rate_limit(retry_after=1), Reply("Hello!"))
        ...  # point a client at server.base_url
    ```
"""

from turnout.testing._azure_server import FakeAzureServer
from turnout.testing._faults import FakeClock, refused_url
from turnout.testing._openai_server import FakeServer
from turnout.testing._script import Fault, FaultKind, Reply, Scripted, ToolCallSpec
from turnout.testing._scripted_server import RecordedRequest
from turnout.testing._tei_server import FakeTEIServer
from turnout.testing._tgi_server import FakeTGIServer
from turnout.testing._wire import Flavor, count_chat_tokens, count_tokens

__all__ = [
    "FakeAzureServer",
    "FakeClock",
    "FakeServer",
    "FakeTEIServer",
    "FakeTGIServer",
    "Fault",
    "FaultKind",
    "Flavor",
    "RecordedRequest",
    "Reply",
    "Scripted",
    "ToolCallSpec",
    "count_chat_tokens",
    "count_tokens",
    "refused_url",
]
