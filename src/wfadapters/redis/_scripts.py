"""The Lua scripts of the Redis adapters: each is one atomic step on the server."""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "CLAIM",
    "CONSUME",
    "EXTEND",
    "FORGET",
    "PENDING",
    "PUBLISH",
    "RELEASE",
    "SCHEDULE",
    "STATES",
    "TAKE_DUE",
]

# Stream keys are per tenant: <prefix>:t:<tenant>:stream (messages), ...:ids (message id
# -> entry id, for the outbox relay) and ...:dead:<group> (dead letters); <prefix>:tenants
# lists the tenants that ever published. The scripts that walk every tenant build these
# keys from the prefix, so they need a standalone Redis (not Redis Cluster).
_KEYS = """
local function skey(prefix, t) return prefix .. ':t:' .. t .. ':stream' end
local function ikey(prefix, t) return prefix .. ':t:' .. t .. ':ids' end
local function dkey(prefix, t, g) return prefix .. ':t:' .. t .. ':dead:' .. g end
local function tenants(prefix)
  local ts = redis.call('SMEMBERS', prefix .. ':tenants')
  table.sort(ts)
  return ts
end
"""

# KEYS: stream, ids-hash, tenants set. ARGV: message json, message id, tenant.
PUBLISH = """
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], id)
redis.call('SADD', KEYS[3], ARGV[3])
return id
"""

# ARGV: prefix, group, consumer, count, clock ms. Reads new messages tenant by tenant,
# starting from a tenant that rotates with every call (fair share between tenants), each
# tenant's oldest first. Each delivery's time is then set to the adapter's clock (XCLAIM
# TIME ... JUSTID does not count a delivery), so idle time is measured on the same clock
# by every claimer, as in the other Stream adapters. Returns {tenant, id, fields}.
CONSUME = _KEYS + """
local ts = tenants(ARGV[1])
if #ts == 0 then return {} end
local first = redis.call('INCR', ARGV[1] .. ':rr:' .. ARGV[2]) % #ts
local want = tonumber(ARGV[4])
local out = {}
for i = 0, #ts - 1 do
  if want <= 0 then break end
  local t = ts[((first + i) % #ts) + 1]
  local key = skey(ARGV[1], t)
  redis.pcall('XGROUP', 'CREATE', key, ARGV[2], '0', 'MKSTREAM')
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', want,
                       'STREAMS', key, '>')
  if r and #r[1][2] > 0 then
    local entries = r[1][2]
    local args = {'XCLAIM', key, ARGV[2], ARGV[3], '0'}
    for _, e in ipairs(entries) do
      args[#args + 1] = e[1]
      out[#out + 1] = {t, e[1], e[2]}
    end
    args[#args + 1] = 'TIME'
    args[#args + 1] = ARGV[5]
    args[#args + 1] = 'JUSTID'
    redis.call(unpack(args))
    want = want - #entries
  end
end
return out
"""

# ARGV: prefix, group, consumer, count, clock ms, min idle ms, max deliveries. Pending
# entries idle for min_idle (on the adapter's clock: the server's idle minus the
# server-to-clock offset) are claimed, or, when they already had max_deliveries, acked
# and copied to the tenant's dead-letter stream in the same step. Returns
# {tenant, id, fields, deliveries}.
CLAIM = _KEYS + """
local t = redis.call('TIME')
local server_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle = tonumber(ARGV[6]) + server_ms - tonumber(ARGV[5])
if idle < 0 then idle = 0 end
local want = tonumber(ARGV[4])
local out = {}
for _, tenant in ipairs(tenants(ARGV[1])) do
  if want <= 0 then break end
  local key = skey(ARGV[1], tenant)
  -- Dead-lettered entries do not count against `want` (it counts deliveries handed out),
  -- so keep paging past them: '(' makes the next page start after the last entry seen.
  local start = '-'
  while want > 0 do
    local pend = redis.pcall('XPENDING', key, ARGV[2], 'IDLE', math.floor(idle), start, '+',
                             want)
    if type(pend) ~= 'table' or pend.err or #pend == 0 then break end
    for _, p in ipairs(pend) do
      local id, n = p[1], tonumber(p[4])
      start = '(' .. id
      if n >= tonumber(ARGV[7]) then
        local e = redis.call('XRANGE', key, id, id)
        redis.call('XACK', key, ARGV[2], id)
        if #e > 0 then
          redis.call('XADD', dkey(ARGV[1], tenant, ARGV[2]), '*', 'id', id, 'n', n,
                     'm', e[1][2][2])
        end
      else
        local c = redis.call('XCLAIM', key, ARGV[2], ARGV[3], '0', id, 'TIME', ARGV[5])
        if c[1] then
          out[#out + 1] = {tenant, c[1][1], c[1][2], n + 1}
          want = want - 1
        end
      end
    end
  end
end
return out
"""

# ARGV: prefix, group. Returns the number of pending entries over every tenant.
PENDING = _KEYS + """
local total = 0
for _, tenant in ipairs(tenants(ARGV[1])) do
  local s = redis.pcall('XPENDING', skey(ARGV[1], tenant), ARGV[2])
  if type(s) == 'table' and not s.err then total = total + s[1] end
end
return total
"""

# ARGV: prefix, group, then tenant and message id pairs. For each message: 'missing'
# (Redis does not have it: never published, or lost with a restart), 'queued' (not
# delivered yet), 'pending' (delivered, not acked) or 'done' (acked or dead-lettered).
STATES = _KEYS + """
local function after(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local last = {}
local function last_delivered(key)
  if last[key] == nil then
    last[key] = false
    local groups = redis.pcall('XINFO', 'GROUPS', key)
    if type(groups) == 'table' and not groups.err then
      for _, g in ipairs(groups) do
        local name, ld = nil, nil
        for i = 1, #g, 2 do
          if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then
            ld = g[i + 1] end
        end
        if name == ARGV[2] then last[key] = ld end
      end
    end
  end
  return last[key]
end
local out = {}
for i = 3, #ARGV, 2 do
  local key = skey(ARGV[1], ARGV[i])
  local eid = redis.call('HGET', ikey(ARGV[1], ARGV[i]), ARGV[i + 1])
  local state
  if not eid or #redis.call('XRANGE', key, eid, eid) == 0 then
    state = 'missing'
  else
    local ld = last_delivered(key)
    if not ld or after(eid, ld) then
      state = 'queued'
    elseif #redis.call('XPENDING', key, ARGV[2], eid, eid, 1) > 0 then
      state = 'pending'
    else
      state = 'done'
    end
  end
  out[#out + 1] = state
end
return out
"""

# ARGV: prefix, then tenant and message id pairs. Drops handled messages from Redis.
FORGET = _KEYS + """
for i = 2, #ARGV, 2 do
  local ids = ikey(ARGV[1], ARGV[i])
  local eid = redis.call('HGET', ids, ARGV[i + 1])
  if eid then
    redis.call('XDEL', skey(ARGV[1], ARGV[i]), eid)
    redis.call('HDEL', ids, ARGV[i + 1])
  end
end
return 1
"""

# KEYS: lease hash. ARGV: owner, now us, expiry us (on the adapter's clock), key ttl ms.
# A lease is a hash {owner, token, exp} kept (owner emptied) after release, so the
# next token is larger.
# Tokens are max(last + 1, server time in microseconds): they keep increasing even when
# Redis lost the hash (a restart, the hygiene expiry), so an event store that saw an
# older token never accepts a stale writer after a Redis restart.
ACQUIRE = """
local owner = redis.call('HGET', KEYS[1], 'owner')
local exp = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if owner and owner ~= '' and exp > tonumber(ARGV[2]) then return nil end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
local token = last + 1
if now_us > token then token = now_us end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', string.format('%d', token),
           'exp', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return string.format('%d', token)
"""

# KEYS: lease hash. ARGV: owner, token, now us, new expiry us, key ttl ms.
EXTEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or
   redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] or
   tonumber(redis.call('HGET', KEYS[1], 'exp') or '0') <= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'exp', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: lease hash. ARGV: owner, token, now us. Compare-and-release: only the holder.
RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or
   redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] or
   tonumber(redis.call('HGET', KEYS[1], 'exp') or '0') <= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', '', 'exp', '0')
return 1
"""

# KEYS: due zset, items hash. ARGV: key, due (microseconds), item json.
SCHEDULE = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return 1
"""

# KEYS: due zset, items hash. ARGV: now (microseconds), limit. Take is remove-and-return
# in one step, so two scheduler loops never both get an item.
TAKE_DUE = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, k in ipairs(keys) do
  local item = redis.call('HGET', KEYS[2], k)
  redis.call('ZREM', KEYS[1], k)
  redis.call('HDEL', KEYS[2], k)
  if item then out[#out + 1] = item end
end
return out
"""
