-- wrk script: POST /v1/access-tickets with a fresh event_id on every request, from every thread.
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  token = args[1]
  counter = 0
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
end

function request()
  counter = counter + 1
  local event_id = string.format("%08x-0000-4000-8%03x-%012x", math.random(0, 0x7fffffff), thread_id, counter)
  local body = string.format(
    '{"audience":"clip-store-bench","event":{"event_id":"%s","customer_id":"wrk-%d","clip_id":"clip-%d","occurred_at":"2026-11-24T09:15:02.120Z",' ..
    '"actor":{"type":"algorithm","id":"clip-classifier","role":"clip classifier","version":"4.2.0"},' ..
    '"action":"infer","media":["video"],"purpose":"other"}}',
    event_id, counter % 500, counter % 977)
  return wrk.format("POST", "/v1/access-tickets", headers, body)
end
