"""The Lua scripts of ``[state]`` on Redis, and the names of the keys they touch.

Every key of one application starts with its prefix in braces, ``{prefix}:``: a Redis Cluster
hash tag, so every key lands in one hash slot and each script (which Redis Cluster runs on one
node only) can touch them all
(https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags). Every
key a script touches is passed in ``KEYS``, none is built inside the script
(https://redis.io/docs/latest/develop/interact/programmability/eval-intro/#script-parameterization).

A budget limit has four keys: its ``spent`` hash, ``:holds`` (hold id -> nano-dollars held),
``:exp`` (hold id -> expiry, ms on Redis's clock) and ``:lapsed`` (hold id -> when it expired
unsettled). A hold that expires moves to ``:lapsed``, so a commit that arrives late (Redis was
down when the call ended) still counts, once: a commit counts only when it removes its hold from
``:holds`` or ``:lapsed``, so the same commit sent twice counts once.
"""

from __future__ import annotations

__all__ = [
    "LAPSE_MEMORY_S",
    "OBSERVE",
    "RESERVE",
    "RETRY_DEPOSIT",
    "RETRY_SPEND",
    "SETTLE",
    "STATUS",
    "budget_keys",
    "key_base",
]

LAPSE_MEMORY_S = 86_400
"""How long an expired, unsettled hold is remembered: its late commit still counts within this time."""


def key_base(prefix: str) -> str:
    """The start of every key of an application: its prefix as a Redis Cluster hash tag."""
    return "{" + prefix + "}"


def budget_keys(key: str) -> list[str]:
    """The four keys of one budget limit's period (``key`` is its ``spent`` hash)."""
    return [key, f"{key}:holds", f"{key}:exp", f"{key}:lapsed"]


# KEYS: 4 per limit (spent, holds, exp, lapsed), then the breaker key of each target, then the
# latency hash and the retry hash when asked. ARGV: limits, amount, hold id, hold ms, lapse memory
# ms, each limit's maximum, each limit's key TTL, then breakers, latency?, retry?, the targets.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local failed, spent_at, held_at = 0, 0, 0
for i = 1, n do
  local k, holds, exp, lapsed = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local dead = redis.call('ZRANGEBYSCORE', exp, '-inf', now)
  for _, h in ipairs(dead) do
    if redis.call('HDEL', holds, h) == 1 then redis.call('ZADD', lapsed, now, h) end
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', exp, '-inf', now)
    local ttl = tonumber(ARGV[5 + n + i])
    if ttl > 0 then redis.call('EXPIRE', lapsed, ttl) end
  end
  redis.call('ZREMRANGEBYSCORE', lapsed, '-inf', now - tonumber(ARGV[5]))
  if failed == 0 then
    local held = 0
    for _, v in ipairs(redis.call('HVALS', holds)) do held = held + tonumber(v) end
    local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
    if spent + held + amount > tonumber(ARGV[5 + i]) then failed, spent_at, held_at = i, spent, held end
  end
end
if failed == 0 then
  for i = 1, n do
    local holds, exp = KEYS[4 * i - 2], KEYS[4 * i - 1]
    redis.call('HSET', holds, ARGV[3], ARGV[2])
    redis.call('ZADD', exp, now + tonumber(ARGV[4]), ARGV[3])
    local ttl = tonumber(ARGV[5 + n + i])
    if ttl > 0 then
      for j = 3, 0, -1 do redis.call('EXPIRE', KEYS[4 * i - j], ttl) end
    end
  end
end
local base = 5 + 2 * n
local breakers, m, r = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
local open = {}
for i = 4 * n + 1, 4 * n + breakers do open[#open + 1] = redis.call('PTTL', KEYS[i]) end
local extra, latency, retry = 4 * n + breakers, {}, {}
if m > 0 and breakers > 0 then
  extra = extra + 1
  latency = redis.call('HMGET', KEYS[extra], unpack(ARGV, base + 4, base + 3 + breakers))
end
if r > 0 and breakers > 0 then
  extra = extra + 1
  retry = redis.call('HMGET', KEYS[extra], unpack(ARGV, base + 4, base + 3 + breakers))
end
return {failed, spent_at, held_at, open, latency, retry}
"""

# KEYS: 4 per limit. ARGV: hold id, nano-dollars spent, each limit's key TTL. Returns 1 when the
# commit counted, 0 when it had counted before (or its hold is older than LAPSE_MEMORY_S).
SETTLE = """
local counted = 0
for i = 1, #KEYS / 4 do
  local k, holds, exp, lapsed = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local found = redis.call('HDEL', holds, ARGV[1]) + redis.call('ZREM', lapsed, ARGV[1])
  redis.call('ZREM', exp, ARGV[1])
  if found > 0 then
    counted = 1
    if ARGV[2] ~= '0' then redis.call('HINCRBY', k, 'spent', ARGV[2]) end
    local ttl = tonumber(ARGV[2 + i])
    if ttl > 0 then redis.call('EXPIRE', k, ttl) end
  end
end
return counted
"""

# KEYS: 3 per limit (spent, holds, exp). Returns {spent, held} per limit, expired holds left out.
STATUS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS / 3 do
  local k, holds, exp = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local held = 0
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', exp, '(' .. now, '+inf')) do
    held = held + tonumber(redis.call('HGET', holds, h) or '0')
  end
  out[#out + 1] = {tonumber(redis.call('HGET', k, 'spent') or '0'), held}
end
return out
"""

RETRY_DEPOSIT = """
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], tostring(math.min(tonumber(ARGV[3]), v + tonumber(ARGV[2]))))
return 1
"""

RETRY_SPEND = """
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], tostring(math.max(v - 1, 0)))
return 1
"""

OBSERVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local s = tonumber(ARGV[2])
if old then s = tonumber(old) + tonumber(ARGV[3]) * (s - tonumber(old)) end
redis.call('HSET', KEYS[1], ARGV[1], tostring(s))
return 1
"""
