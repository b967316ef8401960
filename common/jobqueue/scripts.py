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

from common.jobqueue.names import PRIORITIES


@dataclass(frozen=True)
class Script:
    name: str
    source: str


# Names the scripts build themselves (common/jobqueue/names.py builds the same ones): a user's
# list for band p is root .. user .. ':pNN', an express band xroot .. 'pNN', for p from TOP
# (most urgent) down to BOTTOM (PRIORITIES). waiting(root, uid) counts a user's jobs in the fair
# lane.
_NAMES = (
    f"local TOP, BOTTOM = {PRIORITIES[-1]}, {PRIORITIES[0]}\n"
    + """
local function pad(p) return string.format('%02d', p) end
local function user_band(root, uid, p) return root .. uid .. ':p' .. pad(p) end
local function express_band(xroot, p) return xroot .. 'p' .. pad(p) end
local function waiting(root, uid)
    local n = 0
    for p = TOP, BOTTOM, -1 do n = n + redis.call('LLEN', user_band(root, uid, p)) end
    return n
end
"""
)

# push(band, signal, status, raw, next_up, cap, ttl, ring, uid, p): the job joins its list — a
# new job at the far end (LPUSH), one that already waited (handed back, reaped, reconciled) at
# the end workers take from (RPUSH). A fair-lane job's user (uid ~= '') joins the ring if not in
# it: a new one at the back, one whose job waited already at the front (its turn yielded
# nothing). One token goes on the capped wake-up list, and the task's status hash records where
# the job waits (for its position and its withdrawal).
_PUSH = """
local function push(band, signal, status, raw, next_up, cap, ttl, ring, uid, p)
    local side = next_up and 'RPUSH' or 'LPUSH'
    redis.call(side, band, raw)
    if uid ~= '' and not redis.call('LPOS', ring, uid) then redis.call(side, ring, uid) end
    redis.call('LPUSH', signal, '1')
    redis.call('LTRIM', signal, 0, cap - 1)
    redis.call('HSET', status, 'job', raw, 'band', band, 'queueUser', uid, 'queuePriority', p)
    redis.call('EXPIRE', status, ttl)
end
"""

# position(root, xroot, ring, band, uid, p, raw): 1 = the next job a worker takes; false when
# the job is not waiting in ``band``. Express jobs go first, most urgent band first. In the fair
# lane the ring serves one job per user per turn, from the right end: with k of its own user's
# jobs ahead of it, a job waits for k+1 jobs of each user before its user in the ring and k of
# each user after it (or all of a user's jobs, when fewer). Exact while nobody new arrives: a
# user who joins later takes turns at the back.
_POSITION = """
local function position(root, xroot, ring, band, uid, p, raw)
    local index = redis.call('LPOS', band, raw)
    if not index then return false end
    local mine = redis.call('LLEN', band) - index
    local ahead = 0
    local lowest = BOTTOM
    if uid == '' then lowest = p + 1 end
    for q = TOP, lowest, -1 do ahead = ahead + redis.call('LLEN', express_band(xroot, q)) end
    if uid == '' then return ahead + mine end
    local k = mine - 1
    for q = TOP, p + 1, -1 do k = k + redis.call('LLEN', user_band(root, uid, q)) end
    local users = redis.call('LRANGE', ring, 0, -1)
    local before = true
    for i = #users, 1, -1 do
        if users[i] == uid then
            before = false
        else
            local turns = k
            if before then turns = k + 1 end
            ahead = ahead + math.min(waiting(root, users[i]), turns)
        end
    end
    return ahead + k + 1
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

# KEYS: status hash, wake-up list, ring, the job's list.
# ARGV: raw job, user id ('' = express lane), priority, next_up (1/0), wake-up cap, status TTL,
#       event JSON ('' = no event), events channel, user queue root, express root.
# Returns the job's queue position (1 = next to be taken).
ENQUEUE = Script(
    "enqueue",
    _NAMES
    + _PUSH
    + _POSITION
    + _ANNOUNCE
    + """
local p = tonumber(ARGV[3])
push(KEYS[4], KEYS[2], KEYS[1], ARGV[1], ARGV[4] == '1', tonumber(ARGV[5]), tonumber(ARGV[6]), KEYS[3], ARGV[2], p)
if ARGV[7] ~= '' then announce(KEYS[1], ARGV[7], tonumber(ARGV[6]), ARGV[8]) end
return position(ARGV[9], ARGV[10], KEYS[3], KEYS[4], ARGV[2], p, ARGV[1])
""",
)

# KEYS: the slot's processing list, the set of slots with processing lists, the ring.
# ARGV: slot id, user queue root, express root, then the users this slot must pass over (those
#       already holding their share of the caller's slots).
# Moves the next job into the processing list and returns it: the express lane first (most
# urgent band, oldest first), then the fair lane — the first user from the ring's right end not
# passed over gives its most urgent, oldest job and goes to the back of the ring (or leaves it,
# with nothing more waiting). A passed-over user keeps its place. Returns 1 when only
# passed-over users have work, nil when nothing waits at all.
FETCH = Script(
    "fetch",
    _NAMES
    + """
local function take(band)
    local job = redis.call('LMOVE', band, KEYS[1], 'RIGHT', 'LEFT')
    if job then redis.call('SADD', KEYS[2], ARGV[1]) end
    return job
end
for q = TOP, BOTTOM, -1 do
    local job = take(express_band(ARGV[3], q))
    if job then return job end
end
local passed = {}
for i = 4, #ARGV do passed[ARGV[i]] = true end
local others_wait = false
local i = -1
while true do
    local uid = redis.call('LINDEX', KEYS[3], i)
    if not uid then break end
    if waiting(ARGV[2], uid) == 0 then
        redis.call('LREM', KEYS[3], 1, uid)  -- nothing left (withdrawn): index i names the next one now
    elseif passed[uid] then
        others_wait = true
        i = i - 1
    else
        for q = TOP, BOTTOM, -1 do
            local job = take(user_band(ARGV[2], uid, q))
            if job then
                redis.call('LREM', KEYS[3], 1, uid)
                if waiting(ARGV[2], uid) > 0 then redis.call('LPUSH', KEYS[3], uid) end
                return job
            end
        end
    end
end
if others_wait then return 1 end
return false
""",
)

# KEYS: processing list, status hash, wake-up list, ring, the job's list.
# ARGV: raw job, user id ('' = express lane), priority, wake-up cap, status TTL.
# Moves the job from the processing list to the taking end of its list; returns 1, or 0 when
# the job was not in the list any more (someone else moved it: nothing to do, no duplicate).
HAND_BACK = Script(
    "hand_back",
    _PUSH
    + """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
push(KEYS[5], KEYS[3], KEYS[2], ARGV[1], true, tonumber(ARGV[4]), tonumber(ARGV[5]), KEYS[4], ARGV[2], ARGV[3])
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

# Every list a waiting job can be in, for the scripts that read them all: the dead letters,
# the express bands, every ring user's bands. KEYS[1..3] = the set of slots, dead letters, ring;
# ARGV[1..3] = processing list name prefix, user queue root, express root.
_EVERY_LIST = """
local function each_waiting_list(visit)
    for q = TOP, BOTTOM, -1 do visit(express_band(ARGV[3], q), q) end
    for _, uid in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
        for q = TOP, BOTTOM, -1 do visit(user_band(ARGV[2], uid, q), q) end
    end
end
"""

# KEYS: the set of slots, dead-letter list, ring. ARGV: processing list name prefix (the slot id
# follows it), user queue root, express root. Returns every job message in any list, read
# atomically: a job moving between lists is seen exactly once.
HOLDINGS = Script(
    "holdings",
    _NAMES
    + _EVERY_LIST
    + """
local held = {}
local function add(list)
    for _, raw in ipairs(redis.call('LRANGE', list, 0, -1)) do held[#held + 1] = raw end
end
add(KEYS[2])
each_waiting_list(add)
for _, slot in ipairs(redis.call('SMEMBERS', KEYS[1])) do add(ARGV[1] .. slot) end
return held
""",
)

# KEYS, ARGV: as HOLDINGS. Returns {dead letters, users in the ring, jobs waiting per priority
# TOP..BOTTOM (both lanes), slot, its list's length, ...}.
STATS = Script(
    "stats",
    _NAMES
    + _EVERY_LIST
    + """
local by_priority = {}
for q = BOTTOM, TOP do by_priority[q] = 0 end
each_waiting_list(function(list, q) by_priority[q] = by_priority[q] + redis.call('LLEN', list) end)
local out = {redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3])}
for q = TOP, BOTTOM, -1 do out[#out + 1] = by_priority[q] end
for _, slot in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    out[#out + 1] = slot
    out[#out + 1] = redis.call('LLEN', ARGV[1] .. slot)
end
return out
""",
)

# KEYS: status hash, ring. ARGV: user queue root, express root. Returns the hash as a flat list,
# with 'queuePosition' appended while the job waits.
STATUS = Script(
    "status",
    _NAMES
    + _POSITION
    + """
local state = redis.call('HGETALL', KEYS[1])
local f = {}
for i = 1, #state, 2 do f[state[i]] = state[i + 1] end
if f['status'] == 'queued' and f['job'] and f['band'] and f['queueUser'] and f['queuePriority'] then
    local at = position(ARGV[1], ARGV[2], KEYS[2], f['band'], f['queueUser'], tonumber(f['queuePriority']), f['job'])
    if at then
        state[#state + 1] = 'queuePosition'
        state[#state + 1] = tostring(at)
    end
end
return state
""",
)

# KEYS: status hash, ring. ARGV: user queue root. Removes the task's recorded message from the
# list it waits in (and its user from the ring when nothing else of theirs waits); returns 1 if
# it was still there.
WITHDRAW = Script(
    "withdraw",
    _NAMES
    + """
local f = redis.call('HMGET', KEYS[1], 'job', 'band', 'queueUser')
if not f[1] or not f[2] then return 0 end
local removed = redis.call('LREM', f[2], 1, f[1])
if f[3] and f[3] ~= '' and waiting(ARGV[1], f[3]) == 0 then redis.call('LREM', KEYS[2], 1, f[3]) end
return removed
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
