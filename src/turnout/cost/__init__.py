"""The money code: what a call costs, what it may cost, what may be spent, and what was.

- `turnout.cost.prices`: ``Pricing``, USD per token from ``[prices]`` and the genai-prices catalogue.
- `turnout.cost.estimate`: a call's cost range before it is sent (``Client.estimate``).
- `turnout.cost.budgets`: USD limits per client, alias and tag, reserved before a call is sent.
- `turnout.cost.spend_ledger`: one row per call (SQLite or PostgreSQL) and its totals.

Nothing is imported here, so ``import turnout`` stays fast: import the module you need.
"""
