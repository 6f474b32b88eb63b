"""Write docs/config-schema.json from the config models (``--check``: fail if it is stale)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from turnout.config import config_json_schema

TARGET = Path(__file__).resolve().parents[1] / "docs" / "config-schema.json"


def main() -> int:
    text = json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python scripts/gen_config_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
