"""The shared line's steps, each one Lua script that Redis/Valkey runs whole (no other client's
command comes between its reads and its writes): the store keeps one queue per model however
many router replicas take the requests.

Keys, under a prefix (`hearth` by default):
- `<p>:q:<model>`   sorted set: waiting tickets by their place (microseconds of the store's clock
                    when they joined — a ticket that goes back in line keeps its score);
- `<p>:qx:<model>`  sorted set: the same tickets by when they expire (ms), pushed forward by their
                    replica's heartbeat: a replica that dies takes its places with it;
- `<p>:l:<endpoint>` sorted set: the slots held at an engine endpoint, by when they expire (ms):
                    a lease, renewed by its holder's heartbeat;
- `<p>:avg:<model>` hash: moving averages of an answer's seconds and tokens/s;
- `<p>:wake:<model>` string, with a time to live: the replica that sends this cold period's wake;
- `<p>:epoch`       string: the store's incarnation; a replica that finds another (a store that
                    restarted empty) writes what it holds back;
- `<p>:began`       the store's clock (ms) when that incarnation began;
- `<p>:pause`       until when (ms) no slot is granted: set when a replica that held entries in an
                    older incarnation writes them back, to a lease after the incarnation began —
                    the time every live replica takes to write back the slots it holds (else a
                    slot could be granted twice). A new store with new replicas never pauses.
Channel `<p>:turn` carries the ticket that is now first in a line, so its replica tries at once.
Members of the sorted sets are ticket ids, `<replica>/<n>`.

Each script takes the store's own clock (TIME), never a replica's: places and expiries from
replicas on different nodes compare exactly.
"""

from __future__ import annotations

# Shared by the scripts below: `now` in ms and the place score in µs; expired waiters swept out.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function sweep(q, qx)
  local gone = redis.call('ZRANGEBYSCORE', qx, '-inf', now)
  if #gone > 0 then
    redis.call('ZREM', q, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', qx, '-inf', now)
  end
end
local function tell_head(q, channel)
  local head = redis.call('ZRANGE', q, 0, 0)[1]
  if head then redis.call('PUBLISH', channel, head) end
end
"""

# KEYS q, qx; ARGV ticket, limit, ttl_ms → {1, score} joined, or {0, how many wait}.
JOIN = (
    _PRELUDE
    + """
sweep(KEYS[1], KEYS[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) then return {0, n} end
local score = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return {1, score}
"""
)

# KEYS q, qx, pause, epoch; ARGV ticket, concurrency, lease key prefix, ttl_ms, channel, endpoint...
# → the endpoint granted (the one with the fewest in flight, then by name), or false.
GRANT = (
    _PRELUDE
    + """
if not redis.call('GET', KEYS[4]) then return false end  -- restarted empty: nobody wrote back yet
local pause = redis.call('GET', KEYS[3])
if pause and now < tonumber(pause) then return false end
sweep(KEYS[1], KEYS[2])
if redis.call('ZRANGE', KEYS[1], 0, 0)[1] ~= ARGV[1] then return false end
local best, fewest = false, 0
for i = 6, #ARGV do
  local lease = ARGV[3] .. ARGV[i]
  redis.call('ZREMRANGEBYSCORE', lease, '-inf', now)
  local n = redis.call('ZCARD', lease)
  if n < tonumber(ARGV[2]) and (not best or n < fewest) then best, fewest = ARGV[i], n end
end
if not best then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', ARGV[3] .. best, now + tonumber(ARGV[4]), ARGV[1])
tell_head(KEYS[1], ARGV[5])
return best
"""
)

# KEYS q, qx; ARGV tickets → {{place of each (0: not in line)}, how many wait}: one step for
# every request a replica has waiting in a line, not one per request.
PLACES = (
    _PRELUDE
    + """
sweep(KEYS[1], KEYS[2])
local places = {}
for i = 1, #ARGV do
  local rank = redis.call('ZRANK', KEYS[1], ARGV[i])
  places[i] = rank and rank + 1 or 0
end
return {places, redis.call('ZCARD', KEYS[1])}
"""
)

# KEYS q, qx, lease (or q itself when it held none); ARGV ticket, channel. Leave line and slot.
RELEASE = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
tell_head(KEYS[1], ARGV[2])
return 1
"""
)

# KEYS q, qx, lease; ARGV ticket, score, ttl_ms, channel: the slot back, the place in line kept.
REQUEUE = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
tell_head(KEYS[1], ARGV[4])
return 1
"""
)

# KEYS epoch; ARGV epoch seen, ttl_ms, then pairs (expiry key, ticket): every place and lease
# this replica holds pushed forward (XX: never brought back once gone). → 1, or 0 when the
# store is not the one this replica wrote to (restarted empty): then RESTORE.
HEARTBEAT = (
    _PRELUDE
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local expiry = now + tonumber(ARGV[2])
for i = 3, #ARGV, 2 do redis.call('ZADD', ARGV[i], 'XX', expiry, ARGV[i + 1]) end
return 1
"""
)

# KEYS epoch, pause, began; ARGV epoch to take if none, ttl_ms, the epoch this replica wrote to
# before ('' if none), then quadruples (q key, expiry key, ticket, score) — q key '' for a
# lease — written back where missing (NX). → the store's epoch.
RESTORE = (
    _PRELUDE
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then redis.call('SET', KEYS[3], now) end
local epoch = redis.call('GET', KEYS[1])
if ARGV[3] ~= '' and ARGV[3] ~= epoch then
  local settled = tonumber(redis.call('GET', KEYS[3]) or now) + tonumber(ARGV[2])
  if now < settled then redis.call('SET', KEYS[2], settled) end
end
local expiry = now + tonumber(ARGV[2])
for i = 4, #ARGV, 4 do
  if ARGV[i] ~= '' then redis.call('ZADD', ARGV[i], 'NX', ARGV[i + 3], ARGV[i + 2]) end
  redis.call('ZADD', ARGV[i + 1], 'NX', expiry, ARGV[i + 2])
end
return epoch
"""
)

# KEYS avg; ARGV seconds, tokens/s ('' when not measured): the moving averages (a fifth each).
RECORD = """
local function fold(field, value)
  if value == '' then return end
  local previous = redis.call('HGET', KEYS[1], field)
  local v = tonumber(value)
  if previous then v = 0.8 * tonumber(previous) + 0.2 * v end
  redis.call('HSET', KEYS[1], field, tostring(v))
end
fold('seconds', ARGV[1])
fold('rate', ARGV[2])
return 1
"""

# KEYS one per line key then one per lease key; ARGV how many line keys: waiting and in flight.
COUNTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  if i <= tonumber(ARGV[1]) then out[i] = redis.call('ZCARD', KEYS[i])
  else out[i] = redis.call('ZCOUNT', KEYS[i], now, '+inf') end
end
return out
"""
