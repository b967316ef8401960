"""The Lua scripts of the job protocol, each with its KEYS/ARGV contract.

Every step that touches more than one list is one script, so a job is in exactly one list at
every moment (a band, a slot's processing list or the dead letters) and no reader sees it in
between. Scripts, not MULTI pipelines: a script can branch (move only if the job is still
there) and answers in one round trip.

Shared pieces (push, position, announce) are Lua functions prepended to the scripts that use
them, so each rule is written once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    name: str
    source: str


# push(band, signal, status, raw, next_up, signal_cap, status_ttl): the job joins its band — a
# new job at the far end (LPUSH), one that already waited (handed back, reaped, reconciled) at
# the end workers take from (RPUSH) — one token goes on the capped wake-up list, and the task's
# status hash records the raw message and its band (for its position and its withdrawal).
_PUSH = """
local function push(band, signal, status, raw, next_up, cap, ttl)
    if next_up then redis.call('RPUSH', band, raw) else redis.call('LPUSH', band, raw) end
    redis.call('LPUSH', signal, '1')
    redis.call('LTRIM', signal, 0, cap - 1)
    redis.call('HSET', status, 'job', raw, 'band', band)
    redis.call('EXPIRE', status, ttl)
end
"""

# position(bands, band, raw): 1 = the next job a worker takes; false when the job is not
# waiting in ``band``. Counts every job of the more urgent bands, then those nearer the taking
# end of its own band.
_POSITION = """
local function position(bands, band, raw)
    local ahead = 0
    for i = 1, #bands do
        if bands[i] == band then
            local index = redis.call('LPOS', band, raw)
            if not index then return false end
            return ahead + redis.call('LLEN', band) - index
        end
        ahead = ahead + redis.call('LLEN', bands[i])
    end
    return false
end
"""

# announce(status, event_json, ttl, channel): bump the task's sequence number, store its latest
# state (with that number) for cheap status reads and snapshots, publish the event carrying it.
# Pub/sub delivers in publish order, so a subscriber sees each task's numbers rise, and a
# snapshot's number tells which events it already contains. The task's tag is kept in the hash
# too, so an event raised where the tag is not at hand (the reaper's) still carries it. The
# channel is an argument, not a key: channels are not keys, and Redis Cluster routes a script
# by its keys alone.
_ANNOUNCE = """
local function announce(status, event_json, ttl, channel)
    local seq = redis.call('HINCRBY', status, 'seq', 1)
    local event = cjson.decode(event_json)
    event['seq'] = seq
    if event['tag'] then
        redis.call('HSET', status, 'tag', event['tag'])
    else
        event['tag'] = redis.call('HGET', status, 'tag') or nil
    end
    redis.call('HSET', status, 'userId', event['userId'], 'status', event['status'],
               'progress', event['progress'], 'message', event['message'], 'updatedAt', event['timestamp'])
    redis.call('EXPIRE', status, ttl)
    redis.call('PUBLISH', channel, cjson.encode(event))
    return seq
end
"""

# KEYS: status hash, wake-up list, then the ten bands most urgent first.
# ARGV: raw job, its band's index in KEYS[3..] (1 = most urgent), next_up (1/0), wake-up cap,
#       status TTL, event JSON ('' = no event), events channel.
# Returns the job's queue position (1 = next to be taken).
ENQUEUE = Script(
    "enqueue",
    _PUSH
    + _ANNOUNCE
    + """
local bands = {unpack(KEYS, 3)}
local band = bands[tonumber(ARGV[2])]
local next_up = ARGV[3] == '1'
push(band, KEYS[2], KEYS[1], ARGV[1], next_up, tonumber(ARGV[4]), tonumber(ARGV[5]))
if ARGV[6] ~= '' then announce(KEYS[1], ARGV[6], tonumber(ARGV[5]), ARGV[7]) end
local ahead = 0
for i = 1, tonumber(ARGV[2]) - 1 do ahead = ahead + redis.call('LLEN', bands[i]) end
if next_up then return ahead + 1 end
return ahead + redis.call('LLEN', band)
""",
)

# KEYS: the slot's processing list, the set of slots with processing lists, the ten bands most
# urgent first. ARGV: slot id. Moves the next job (most urgent band, oldest first) into the
# processing list and returns it; nil when every band is empty.
FETCH = Script(
    "fetch",
    """
for i = 3, #KEYS do
    local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if job then
        redis.call('SADD', KEYS[2], ARGV[1])
        return job
    end
end
return false
""",
)

# KEYS: processing list, status hash, wake-up list, the job's band.
# ARGV: raw job, wake-up cap, status TTL.
# Moves the job from the processing list to the taking end of its band; returns 1, or 0 when
# the job was not in the list any more (someone else moved it: nothing to do, no duplicate).
HAND_BACK = Script(
    "hand_back",
    _PUSH
    + """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
push(KEYS[4], KEYS[3], KEYS[2], ARGV[1], true, tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
""",
)

# KEYS: processing list, dead-letter list. ARGV: raw job.
# Moves the job to the dead letters; returns 1, or 0 when it was not in the list any more.
BURY = Script(
    "bury",
    """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
""",
)

# KEYS: the set of slots, dead-letter list, the ten bands. ARGV: processing list name prefix
# (the slot id follows it). Returns every job message in any list, read atomically: a job
# moving between lists is seen exactly once.
HOLDINGS = Script(
    "holdings",
    """
local held = {}
local function add(list)
    for _, raw in ipairs(redis.call('LRANGE', list, 0, -1)) do held[#held + 1] = raw end
end
for i = 2, #KEYS do add(KEYS[i]) end
for _, slot in ipairs(redis.call('SMEMBERS', KEYS[1])) do add(ARGV[1] .. slot) end
return held
""",
)

# KEYS: the set of slots, dead-letter list, the ten bands most urgent first. ARGV: processing
# list name prefix. Returns {dead letters, band lengths..., slot, its list's length, ...}.
STATS = Script(
    "stats",
    """
local out = {redis.call('LLEN', KEYS[2])}
for i = 3, #KEYS do out[#out + 1] = redis.call('LLEN', KEYS[i]) end
for _, slot in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    out[#out + 1] = slot
    out[#out + 1] = redis.call('LLEN', ARGV[1] .. slot)
end
return out
""",
)

# KEYS: status hash, the ten bands most urgent first. Returns the hash as a flat list, with
# 'queuePosition' appended while the job waits in its band.
STATUS = Script(
    "status",
    _POSITION
    + """
local state = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #state, 2 do fields[state[i]] = state[i + 1] end
if fields['status'] == 'queued' and fields['job'] and fields['band'] then
    local at = position({unpack(KEYS, 2)}, fields['band'], fields['job'])
    if at then
        state[#state + 1] = 'queuePosition'
        state[#state + 1] = tostring(at)
    end
end
return state
""",
)

# KEYS: status hash, the job's band. Removes the task's recorded message from its band;
# returns 1 if it was still there.
WITHDRAW = Script(
    "withdraw",
    """
local raw = redis.call('HGET', KEYS[1], 'job')
if not raw then return 0 end
return redis.call('LREM', KEYS[2], 1, raw)
""",
)

# KEYS: processing list, the set of slots. ARGV: slot id. Forgets a slot whose processing list
# is empty (a retired or reaped slot); returns 1, or 0 if the list still holds jobs.
FORGET_SLOT = Script(
    "forget_slot",
    """
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
""",
)

# KEYS: status hash. ARGV: event JSON, status TTL, events channel. Returns the event's number.
ANNOUNCE = Script("announce", _ANNOUNCE + "return announce(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3])\n")

# KEYS: lock. ARGV: token. Deletes the lock only if it is still ours (it may have expired and
# been taken by another worker meanwhile).
RELEASE_LOCK = Script(
    "release_lock",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)
